/* Internal declarations shared by the engine's sources. Not installed. */
#ifndef DN_INTERNAL_H
#define DN_INTERNAL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "darknet.h"

/* ---- status.c: errors, logging, allocation ---------------------------- */

/* Record a formatted message for dn_last_error() and return `status`. */
dn_status dn_fail(dn_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void dn_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append to buf (capacity n) at *pos, advancing *pos; output past the end is dropped. */
void dn_appendf(char *buf, size_t n, size_t *pos, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
enum { DN_LOG_DEBUG = 10, DN_LOG_INFO = 20, DN_LOG_WARNING = 30, DN_LOG_ERROR = 40 };

#define DN_TRY(expr)                         \
    do {                                     \
        dn_status dn_try_ = (expr);          \
        if (dn_try_ != DN_OK) return dn_try_; \
    } while (0)

/* Count the bytes dn_alloc_floats hands out on this thread into *counter (NULL: stop) and
   refuse any allocation that would take the count past `limit` (0: no limit). */
void dn_alloc_tally(size_t *counter, size_t limit);
/* Whether the last failed allocation on this thread was refused by the limit. */
int dn_alloc_over_budget(void);
/* Add `bytes` allocated another way (a device's memory) to that count. */
void dn_alloc_count(size_t bytes);
/* Bytes of memory the machine can still give (0: unknown). */
size_t dn_available_memory(void);
/* Zeroed float array, or NULL when n == 0 or out of memory. */
float *dn_floats(size_t n);
/* Allocate `n` zeroed floats into *dst, failing with DN_ERR_OOM naming `what`. */
dn_status dn_alloc_floats(float **dst, size_t n, const char *what);
/* n floats on 64-byte boundaries, not initialised (for arrays the caller fills whole). */
dn_status dn_alloc_floats_aligned(float **dst, size_t n, const char *what);
/* Hand the whole pages of the first `bytes` of an array back to the system, which reads as zeros
   there afterwards (where the system allows; elsewhere nothing): for an array copied front to back
   before it is freed, so that it and its copy are not both resident whole. */
void dn_release_pages(const void *p, size_t bytes);
/* Free the n floats of *p from dn_alloc_floats, taking them off the count; *p becomes NULL. */
void dn_free_floats(float **p, size_t n);

/* Per-network random generator (xorshift64*): no global state. */
typedef struct dn_rng { uint64_t s; } dn_rng;
float dn_rng_uniform(dn_rng *r, float lo, float hi);

/* ---- cfg.c: the .cfg lexer (spec §1.1) -------------------------------- */

typedef struct dn_option {
    char *key, *val;
    int line;
    int used;
} dn_option;

typedef struct dn_section {
    char *type; /* e.g. "[convolutional]" */
    int line;
    int n_opts;
    dn_option *opts;
} dn_section;

typedef struct dn_cfg {
    char *path;
    int sections_required;  /* a .cfg: options must follow a [section] */
    int n_sections;
    dn_section *sections;
} dn_cfg;

dn_status dn_cfg_read(const char *path, dn_cfg **out);
void dn_cfg_free(dn_cfg *cfg);
/* First option named `key` (marked used), or NULL. */
dn_option *dn_cfg_find(dn_section *s, const char *key);

/* ---- activations.c (spec §3.4) ----------------------------------------- */

#define DN_ACTIVATIONS(X)                                                                  \
    X(LOGISTIC, "logistic") X(RELU, "relu") X(RELU6, "relu6") X(RELIE, "relie")           \
    X(LINEAR, "linear") X(RAMP, "ramp") X(TANH, "tanh") X(PLSE, "plse")                    \
    X(REVLEAKY, "revleaky") X(LEAKY, "leaky") X(ELU, "elu") X(LOGGY, "loggy")              \
    X(STAIR, "stair") X(HARDTAN, "hardtan") X(LHTAN, "lhtan") X(SELU, "selu")              \
    X(GELU, "gelu") X(SWISH, "swish") X(MISH, "mish") X(HARD_MISH, "hard_mish")            \
    X(NORM_CHAN, "normalize_channels") X(NORM_CHAN_SOFTMAX, "normalize_channels_softmax") \
    X(NORM_CHAN_SOFTMAX_MAXVAL, "normalize_channels_softmax_maxval")

typedef enum dn_act {
#define DN_ACT_ENUM(id, name) DN_ACT_##id,
    DN_ACTIVATIONS(DN_ACT_ENUM)
#undef DN_ACT_ENUM
    DN_ACT_COUNT
} dn_act;

/* -1 when `name` is not an activation. */
int dn_act_from_name(const char *name);
const char *dn_act_name(dn_act a);
/* Whether backward needs the pre-activation values (swish, mish, hard_mish). */
int dn_act_needs_input(dn_act a);
/* ---- convolution geometry (spec §3.2) ---------------------------------- */

typedef struct dn_conv_geom {
    int c, h, w;         /* input planes (one group) */
    int size, stride_x, stride_y, pad, dilation;
    int out_h, out_w;
} dn_conv_geom;
/* ---- batch normalisation shared by conv, connected, batchnorm (spec §3.3, §4.4) --- */

typedef struct dn_bn {
    int n, spatial;                    /* channels, pixels per channel */
    float *scales, *mean, *variance;   /* gamma, rolling statistics */
    float rolling;                     /* weight of the new batch statistic */
    /* training only */
    float *scale_updates, *batch_mean, *batch_var, *x_norm;
} dn_bn;

dn_status dn_bn_init(dn_bn *bn, int n, int spatial, int batch, int train, float rolling);
void dn_bn_free(dn_bn *bn);
/* The batch-norm arrays for dn_layer_ops.param (count = n), or NULL. */
float *dn_bn_param(dn_bn *bn, const char *name, float **delta);

/* ---- layers ----------------------------------------------------------- */

typedef struct dn_layer dn_layer;
typedef struct dn_network dn_network;

typedef struct dn_parse_ctx {
    const dn_cfg *cfg;
    dn_section *sec;
    const dn_layer *layers; /* layers [0, index) are built */
    int index;
    int train;              /* the network is built with training buffers */
    dn_rng *rng;            /* initial weights */
    size_t *workspace;      /* floats of shared scratch the layers so far need */
    char opt_error[768]; /* first malformed number read by dn_opt_*; generic code raises it */
    int net_w, net_h;       /* network input size */
    int estimate;           /* shapes and allocations only: initial weights are not drawn */
} dn_parse_ctx;

/* Option readers (first key wins). Numbers must be whole tokens in range: a
   malformed one is recorded in ctx->opt_error and `def` is returned. */
int dn_opt_int(dn_parse_ctx *ctx, const char *key, int def);
float dn_opt_float(dn_parse_ctx *ctx, const char *key, float def);
const char *dn_opt_str(dn_parse_ctx *ctx, const char *key, const char *def);
/* Comma list of ints; returns the count (<= max) or -1 after dn_parse_fail (also on a malformed item). */
int dn_opt_ints(dn_parse_ctx *ctx, const char *key, int *out, int max);
int dn_opt_floats(dn_parse_ctx *ctx, const char *key, float *out, int max);
/* Mark keys that upstream reads but inference/our training does not use. NULL-terminated. */
void dn_opt_accept(dn_parse_ctx *ctx, const char *const *keys);
/* Activation option (`def` when absent); unknown names fail. */
dn_status dn_opt_activation(dn_parse_ctx *ctx, const char *key, const char *def, dn_act *out);
/* Resolve a (possibly relative) layer reference to an index < ctx->index. */
dn_status dn_opt_layer_ref(dn_parse_ctx *ctx, const char *key, int ref, int *out);
/* Fail with "<file>:<line>: [type] layer <i>: <message>". */
dn_status dn_parse_fail(dn_parse_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Fail unless the input is an image (w, h, c all > 0). */
dn_status dn_require_image(dn_parse_ctx *ctx, const dn_layer *l);
/* The layer's inputs: layer indices (-1: the network input); without a call a layer reads the previous one. */
dn_status dn_layer_set_inputs(dn_layer *l, const int *idx, int n);

/* Sequential weights reader with upstream's end-of-file semantics (spec §2.3). */
typedef struct dn_reader {
    FILE *f;
    int eof;
} dn_reader;
void dn_read_floats(dn_reader *r, float *dst, size_t n);
typedef struct dn_writer {
    FILE *f;
    int failed;
} dn_writer;
void dn_write_floats(dn_writer *w, const float *src, size_t n);

/* Hyper-parameters of one SGD update (spec §4.5). */
typedef struct dn_update {
    int batch;          /* images per iteration: mini-batch * subdivisions */
    float learning_rate, momentum, decay;
} dn_update;


typedef struct dn_box_query dn_box_query; /* boxes.c */
/* Collects a layer's dn_attr entries into the caller's buffers (attrs.c); counts what does not fit. */
typedef struct dn_attrs {
    dn_attr *items;
    int max_items, n_items;
    double *values;
    int max_values, n_values;
} dn_attrs;
void dn_attr_int(dn_attrs *a, const char *name, int v);
void dn_attr_float(dn_attrs *a, const char *name, float v);
void dn_attr_ints(dn_attrs *a, const char *name, const int *v, int n);
void dn_attr_floats(dn_attrs *a, const char *name, const float *v, int n);
void dn_attr_str(dn_attrs *a, const char *name, const char *v);

typedef struct dn_layer_ops {
    const char *name;   /* canonical section name */
    const char *alias;  /* second accepted spelling, or NULL */
    int in_place;       /* output and delta are the previous layer's buffers */
    /* Read options, set out_* / outputs, allocate parameters. Generic code sets
       w/h/c/inputs/batch before and allocates output/delta after. */
    dn_status (*parse)(dn_layer *l, dn_parse_ctx *ctx);
    size_t (*n_weights)(const dn_layer *l);           /* floats in the .weights record */
    void (*read_weights)(dn_layer *l, dn_reader *r);
    void (*write_weights)(const dn_layer *l, dn_writer *w);
    /* Parameter array `name` ("weights", "biases", "scales", "rolling_mean", "rolling_variance"), or NULL;
       *delta receives its update accumulator (NULL if none), *count its floats. */
    float *(*param)(dn_layer *l, const char *name, float **delta, size_t *count);
    void (*describe)(const dn_layer *l, char *buf, size_t n); /* console line */
    void (*attrs)(const dn_layer *l, dn_attrs *a);             /* resolved hyper-parameters, or NULL: none */
    void (*free)(dn_layer *l);
    /* Detection heads only (spec D1): fill *info and, when out is not NULL, append the
       records of batch item q->b from the last forward. */
    dn_status (*boxes)(const dn_layer *l, const dn_box_query *q, dn_detector_info *info,
                       dn_detections *out);
} dn_layer_ops;

/* ---- tensors, backends and the execution context ------------------------ */

typedef struct dn_backend dn_backend;

/* A float array in the memory of a backend's device. */
typedef struct dn_tensor {
    float *data;
    size_t n;                  /* floats */
    const dn_backend *device;  /* owner; NULL while unallocated */
} dn_tensor;

/* Everything a kernel may use besides its layer: one per network, no process-global knobs. */
typedef struct dn_ctx {
    const dn_backend *backend;
    int threads;               /* CPU threads for this network's calls */
    int training;              /* this pass trains: batch statistics, dropout, costs */
    int prepared;              /* inference weights are prepared (batch norm folded) */
    dn_tensor workspace;       /* shared scratch, the largest any kernel asks for */
    dn_tensor truth;           /* training targets of this pass (batch * truth_size) */
    int truth_size;
    dn_rng rng;                /* dropout draws */
    volatile int *cancel;      /* nonzero: stop at the next layer boundary */
    void *device;              /* the backend's per-network state (stream, handles); NULL on the CPU */
    int device_newer;          /* the prepared parameter copies changed after the host arrays, or replace
                                  them (the CPU's packed weights): pull them (dn_network_sync_host) */
} dn_ctx;

/* A backend's implementation of one layer kind. A NULL forward means the kind is
   unsupported there; a NULL backward/update means the kind has nothing to do in that step. */
typedef struct dn_kernels {
    /* fold batch norm, transform weights: make the inference-only copies */
    dn_status (*prepare)(dn_layer *l, dn_ctx *ctx);
    /* floats of shared scratch the layer's kernels need (train: training passes too); inference
       kernels that can make do with less take no more than `room` where they can (the plan's
       room beside the outputs alive at the layer; SIZE_MAX: what runs fastest) */
    size_t (*workspace)(const dn_layer *l, int train, size_t room);
    dn_status (*forward)(dn_layer *l, const dn_tensor *const *in, dn_tensor *out, dn_ctx *ctx);
    /* l->delta is the gradient of the output; add the gradients of the inputs into in_delta[k]->data
       (NULL data: that input needs none) */
    dn_status (*backward)(dn_layer *l, const dn_tensor *const *in, dn_tensor *const *in_delta, dn_ctx *ctx);
    dn_status (*update)(dn_layer *l, const dn_update *u, dn_ctx *ctx);
    /* Optional: the option of this layer the backend cannot run (e.g. "with weights"), or NULL */
    const char *(*unsupported)(const dn_layer *l);
    /* Copy the parameters (and update accumulators) the device holds into the layer's host
       arrays, which are read for saving, param() and resizing; on the CPU, restore the host
       arrays prepare dropped because a prepared copy holds them exactly. */
    dn_status (*pull)(const dn_layer *l, const dn_ctx *ctx);
    /* forward multiplies the whole batch at once, one pass over the weights for all images (a
       batched inference then runs layer by layer, not image by image: see network.c) */
    int whole_batch;
    /* Optional: whether forward may write the output over its only input, which starts at the
       same address (plan.c places it there where nothing reads the input later) */
    int (*overlays_input)(const dn_layer *l);
} dn_kernels;

/* Every layer kind, from layers.def. */
typedef enum dn_layer_kind {
#define DN_LAYER(kind, caps) DN_KIND_##kind,
#include "layers.def"
#undef DN_LAYER
    DN_KIND_COUNT
} dn_layer_kind;

struct dn_backend {
    const char *name;          /* "cpu (avx2)", ... */
    dn_status (*alloc)(dn_tensor *t, size_t n, const char *what);
    void (*release)(dn_tensor *t);
    dn_status (*upload)(dn_tensor *dst, size_t offset, const float *src, size_t n);
    dn_status (*download)(float *dst, const dn_tensor *src, size_t offset, size_t n);
    void (*begin)(const dn_ctx *ctx);  /* before each network call on the calling thread */
    const dn_kernels *kernels[DN_KIND_COUNT]; /* NULL: the kind is unsupported on this backend */
    /* Optional (NULL on the CPU): make / free ctx->device when a network is built / freed. */
    dn_status (*open)(dn_ctx *ctx);
    void (*close)(dn_ctx *ctx);
    /* Zero n floats of t from offset (NULL: memset, host memory). */
    dn_status (*zero)(dn_tensor *t, size_t offset, size_t n);
    /* Kernels read device copies of the parameters that prepare makes from the host arrays:
       every pass prepares first when they are stale; training updates the copies, and the
       kernels' pull brings them back to the host when it reads them (dn_network_sync_host). */
    int device_copies;
    /* Optional: sum the update accumulators of n networks with the same layers, one per device of
       this backend, into each (data-parallel training; NULL: host arrays are summed instead). */
    dn_status (*allreduce)(dn_ctx *const *ctxs, int n);
};

/* The CPU backend for this processor (or the one DARKNETPY_CPU names: baseline, avx2, avx512). */
const dn_backend *dn_cpu_backend(void);
/* The backend a device string names: "cpu", "cuda" (device 0) or "cuda:N" (device.c). */
dn_status dn_backend_find(const char *device, const dn_backend **out);
/* The backend of CUDA device `ordinal` (cuda/backend.c; only in builds with CUDA). */
dn_status dn_cuda_backend(int ordinal, const dn_backend **out);

struct dn_layer {
    const dn_layer_ops *ops;
    dn_layer_kind kind;
    int index, batch;
    int w, h, c, inputs;               /* input shape (of in_idx[0]) */
    int out_w, out_h, out_c, outputs;  /* output shape; outputs per sample */
    int n_in, *in_idx;                 /* input layers, -1: the network input */
    const dn_tensor **in;              /* their outputs ... */
    dn_tensor **in_delta;              /* ... and deltas */
    dn_tensor output, delta;           /* batch * outputs */
    int output_kept;                   /* the output survives the pass (else its memory is reused, plan.c) */
    dn_tensor scratch;                 /* the workspace its kernels ask for (n); in inference, placed in
                                          the arena beside the outputs alive meanwhile (plan.c) */
    int train;                         /* trainable: has updates, is updated */
    int stopbackward, onlyforward, dontload, dontloadscales;
    float lr_mult;                     /* per-layer learning_rate multiplier */
    int batch_normalize;
    double bflops;
    double cost;                       /* loss of the last training forward */
    int has_cost;
    int truths;                        /* truth floats per sample it reads (0: as many as the network outputs) */
    const dn_detection_stats *stats;   /* detection heads: statistics of the last training pass */
    void *p;                           /* layer-specific state */
};

/* Most floats one layer may hold per tensor (outputs x batch, weights, workspace):
   the layers index them with int. */
#define DN_MAX_TENSOR INT32_MAX

/* Window geometry shared by [maxpool] and [local_avgpool] (spec §1.5). */
typedef struct dn_pool {
    int size, stride_x, stride_y, padding; /* padding is the total, split floor(p/2) before */
} dn_pool;
/* Read size/stride/padding, set the layer's output shape. */
dn_status dn_pool_parse(dn_layer *l, dn_parse_ctx *ctx, dn_pool *p);
/* In-image part [lo, hi) of output `index`'s window along an axis of length `limit`
   with stride `stride` (lo >= hi when the window lies wholly outside). */
static inline void dn_pool_span(const dn_pool *p, int index, int stride, int limit, int *lo, int *hi)
{
    const int start = index * stride - p->padding / 2, end = start + p->size;
    *lo = start < 0 ? 0 : start;
    *hi = end > limit ? limit : end;
}
/* Console line for a pooling layer: `kind` is "max" or "avg". */
void dn_pool_describe(const dn_layer *l, const dn_pool *p, const char *kind, char *buf, size_t n);

/* ---- boxes.c: detection records shared by the head kinds (spec D1) ---- */

struct dn_box_query {
    int b;                  /* batch item */
    int img_w, img_h;       /* original image size */
    int net_w, net_h;       /* network input size */
    int letter;             /* the image was letterboxed into the input */
    int relative;           /* boxes relative to the image, else in its pixels */
    float thresh, hier;
};

/* Append one record with a zeroed prob row (returned; NULL after dn_fail on OOM). */
float *dn_detections_add(dn_detections *d, float x, float y, float w, float h, float objectness);
/* upstream's correct_yolo_boxes on records [from, d->n): network-relative to image-relative
   (or image pixels when !q->relative). */
void dn_correct_boxes(dn_detections *d, int from, const dn_box_query *q);

/* The layer table (layers.c, generated from layers.def). */
const dn_layer_ops *dn_layer_ops_find(const char *section_type, dn_layer_kind *kind);
unsigned dn_layer_caps(dn_layer_kind kind);
extern const char *const dn_unsupported_sections[];

/* ---- network ----------------------------------------------------------- */

typedef enum dn_policy {
    DN_POLICY_CONSTANT, DN_POLICY_STEP, DN_POLICY_STEPS, DN_POLICY_EXP, DN_POLICY_POLY,
    DN_POLICY_SIGMOID, DN_POLICY_RANDOM, DN_POLICY_SGDR
} dn_policy;

#define DN_MAX_STEPS 64

struct dn_network {
    char *cfg_path;
    dn_cfg *cfg;           /* kept for dn_network_resize */
    dn_net_info info;
    int n;
    dn_layer *layers;
    /* schedule (spec §4.6) */
    dn_policy policy;
    int step, n_steps, sgdr_cycle, sgdr_mult;
    float scale, gamma, learning_rate_min;
    int steps[DN_MAX_STEPS];
    float scales[DN_MAX_STEPS];
    /* buffers */
    dn_tensor input;       /* batch * inputs */
    dn_tensor input_delta; /* batch * inputs, only for dn_network_backward */
    int want_prepared;     /* prepare (fuse) before inference passes */
    size_t bytes;          /* allocated by the build and prepare */
    size_t max_memory;     /* the most the network may hold (0: what the machine has available) */
    dn_tensor arena;       /* inference: every layer output, placed by dn_plan_outputs */
    size_t arena_scratch;  /* floats of the arena the layers' workspaces add to their outputs' */
    int keep_all;          /* inference: keep every output (no reuse) */
    unsigned char *keep;   /* inference: n flags, outputs kept at the user's request (NULL: none) */
    int estimate_minibatch; /* > 0: an estimate (estimate.c), training buffers for this mini-batch */
    double phase_s[3];     /* wall seconds of the last train_step's forward, backward, update */
    double *layer_s;       /* NULL, or each layer's wall seconds summed over the timed forwards */
    long timed_forwards;   /* forwards summed in layer_s */
    dn_ctx ctx;
};

/* Index of the last layer that is not [cost]: the network's output. */
int dn_network_output_layer(const dn_network *net);

/* Drop the prepared state: the host's raw weights changed and are the reference again (call
   dn_network_sync_host first unless every array was rewritten). */
void dn_network_unprepare(dn_network *net);
/* Bring the host's parameter arrays up to date with a device that trained them. */
dn_status dn_network_sync_host(const dn_network *net);

/* The parts of a training iteration (dn_network_train_step, parallel.c): check the truth size and
   make the parameters ready to change; forward and backward over the subdivisions of x/y,
   accumulating updates (*total: their cost); the SGD update for `images` images. */
dn_status dn_network_begin_step(dn_network *net, int truth_size);
dn_status dn_network_accumulate(dn_network *net, const float *x, const float *y, int truth_size, double *total);
dn_status dn_network_apply_update(dn_network *net, int images, float momentum);

/* Place the outputs of an inference network in net->arena by liveness (plan.c). */
dn_status dn_plan_outputs(dn_network *net);
/* Whether an inference of several images runs them one by one through the whole network
   (plan.c): then an image's activations stay in cache from one layer to the next, where the
   batch's would not, and only kept outputs need room for the batch. The CPU's kernels loop
   over the images anyway, except those that multiply the whole batch at once (fully
   connected), which would read their weights once per image. */
int dn_plan_image_by_image(const dn_network *net);

/* Fail with DN_ERR_OOM, naming the subdivisions (or else the input size) that fit, when training
   `cfg` as it is would need more than `limit` bytes, `limit_name` (estimate.c). */
dn_status dn_check_training_memory(const dn_cfg *cfg, int width, int height, size_t limit, const char *limit_name);

/* Build layers from a cfg; width/height > 0 replace the [net] values. */
dn_status dn_network_parse(const dn_cfg *cfg, int batch, int width, int height, dn_network *net);

#endif /* DN_INTERNAL_H */
