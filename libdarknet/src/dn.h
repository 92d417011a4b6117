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

/* Zeroed float array, or NULL when n == 0 or out of memory. */
float *dn_floats(size_t n);
/* Allocate `n` zeroed floats into *dst, failing with DN_ERR_OOM naming `what`. */
dn_status dn_alloc_floats(float **dst, size_t n, const char *what);

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
/* In place on (batch, c, spatial). */
void dn_activate(float *x, int batch, int c, int spatial, dn_act a);
/* x = act(x + bias[channel]) in one pass; bias may be NULL. */
void dn_activate_bias(float *x, const float *bias, int batch, int c, int spatial, dn_act a);
/* delta *= f'(.) given the output y and, where needed, the pre-activation x. */
void dn_activate_grad(const float *x, const float *y, int batch, int c, int spatial, dn_act a, float *delta);

/* ---- blas.c: GEMM through OpenBLAS, im2col -------------------------------- */

/* Row-major C = alpha*op(A)*op(B) + beta*C. */
void dn_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
             const float *b, int ldb, float beta, float *c, int ldc);

/* count independent C_i = A_i * B_i (no transposes), split across threads. */
void dn_gemm_batch(int count, int m, int n, int k, const float *a, size_t stride_a, int lda, const float *b,
                   size_t stride_b, int ldb, float *c, size_t stride_c, int ldc);

typedef struct dn_conv_geom {
    int c, h, w;         /* input planes (one group) */
    int size, stride_x, stride_y, pad, dilation;
    int out_h, out_w;
} dn_conv_geom;
/* col (c*size*size, out_h*out_w) from im (c, h, w). */
void dn_im2col(const float *im, const dn_conv_geom *g, float *col);
/* im += col2im(col). */
void dn_col2im_add(const float *col, const dn_conv_geom *g, float *im);

/* ---- winograd.c: F(4x4 or 2x2, 3x3) for 3x3 stride-1 pad-1 inference convolutions ---- */

/* the output tile size m (4 or 2) that makes Winograd F(m x m, 3x3) faster
   than im2col for this layer shape, else 0 */
int dn_wino_tile(int c, int k, int h, int w);
/* floats of scratch dn_wino_conv3x3 needs */
size_t dn_wino_workspace(int c, int k, int h, int w, int m);
/* u ((m+2)^2, k, c) from w (k, c, 3, 3) */
void dn_wino_weights(const float *w, int k, int c, int m, float *u);
/* out (k, h, w) = 3x3 stride-1 pad-1 convolution of im (c, h, w), no bias */
void dn_wino_conv3x3(const float *im, int c, int h, int w, int k, int m, const float *u, float *out, float *ws);

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
/* y (batch, n, spatial) in place: normalise and scale (no bias). */
void dn_bn_forward(dn_bn *bn, float *y, int batch, int training);
/* Backward through scale and normalisation; delta in place. */
void dn_bn_backward(dn_bn *bn, float *delta, int batch);
/* The batch-norm arrays for dn_layer_ops.param (count = n), or NULL. */
float *dn_bn_param(dn_bn *bn, const char *name, float **delta);
/* Add bias per channel. */
void dn_add_bias(float *y, const float *bias, int batch, int n, int spatial);
/* bias_updates[f] += sum of delta over batch and pixels. */
void dn_backward_bias(float *bias_updates, const float *delta, int batch, int n, int spatial);

/* ---- layers ----------------------------------------------------------- */

typedef struct dn_layer dn_layer;
typedef struct dn_network dn_network;

typedef struct dn_parse_ctx {
    const dn_cfg *cfg;
    dn_section *sec;
    dn_network *net; /* layers [0, index) are built */
    int index;
} dn_parse_ctx;

/* Option readers (spec §1.1: atoi/atof semantics, first key wins). */
int dn_opt_int(dn_parse_ctx *ctx, const char *key, int def);
float dn_opt_float(dn_parse_ctx *ctx, const char *key, float def);
const char *dn_opt_str(dn_parse_ctx *ctx, const char *key, const char *def);
/* Comma list of ints; returns the count (<= max) or -1 after dn_parse_fail. */
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

/* Momentum SGD on one tensor: U -= decay*B*W; W += lr/B*U; U *= m. */
void dn_sgd(float *w, float *u, size_t n, const dn_update *up, float lr, int decay);

typedef struct dn_box_query dn_box_query; /* boxes.c */

typedef struct dn_layer_ops {
    const char *name;   /* canonical section name */
    const char *alias;  /* second accepted spelling, or NULL */
    int in_place;       /* output and delta are the previous layer's buffers */
    /* Read options, set out_* / outputs, allocate parameters. Generic code sets
       w/h/c/inputs/batch before and allocates output/delta after. */
    dn_status (*parse)(dn_layer *l, dn_parse_ctx *ctx);
    size_t (*workspace)(const dn_layer *l);           /* floats of shared scratch */
    size_t (*n_weights)(const dn_layer *l);           /* floats in the .weights record */
    void (*read_weights)(dn_layer *l, dn_reader *r);
    void (*write_weights)(const dn_layer *l, dn_writer *w);
    void (*fuse)(dn_layer *l);                        /* prepare inference-only weights */
    void (*forward)(dn_layer *l, dn_network *net, const float *in);
    void (*backward)(dn_layer *l, dn_network *net, const float *in, float *in_delta);
    void (*update)(dn_layer *l, const dn_update *u);
    /* Parameter array `name` ("weights", "biases", "scales", "rolling_mean", "rolling_variance"), or NULL;
       *delta receives its update accumulator (NULL if none), *count its floats. */
    float *(*param)(dn_layer *l, const char *name, float **delta, size_t *count);
    void (*describe)(const dn_layer *l, char *buf, size_t n); /* console line */
    void (*free)(dn_layer *l);
    /* Detection heads only (spec D1): fill *info and, when out is not NULL, append the
       records of batch item q->b from the last forward. */
    dn_status (*boxes)(const dn_layer *l, const dn_box_query *q, dn_detector_info *info,
                       dn_detections *out);
} dn_layer_ops;

struct dn_layer {
    const dn_layer_ops *ops;
    int index, batch;
    int w, h, c, inputs;               /* input shape */
    int out_w, out_h, out_c, outputs;  /* output shape; outputs per sample */
    float *output, *delta;             /* batch * outputs */
    int train;                         /* trainable: has updates, is updated */
    int stopbackward, onlyforward, dontload, dontloadscales;
    float lr_mult;                     /* per-layer learning_rate multiplier */
    int batch_normalize;
    double bflops;
    double cost;                       /* loss of the last training forward */
    int has_cost;
    void *p;                           /* layer-specific state */
};

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
const dn_layer_ops *dn_layer_ops_find(const char *section_type);
extern const char *const dn_unsupported_sections[];

/* ---- network ----------------------------------------------------------- */

typedef enum dn_policy {
    DN_POLICY_CONSTANT, DN_POLICY_STEP, DN_POLICY_STEPS, DN_POLICY_EXP, DN_POLICY_POLY,
    DN_POLICY_SIGMOID, DN_POLICY_RANDOM, DN_POLICY_SGDR
} dn_policy;

#define DN_MAX_STEPS 64

struct dn_network {
    char *cfg_path;
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
    float *input;          /* batch * inputs */
    float *truth;          /* batch * truth_size, training */
    float *input_delta;    /* batch * inputs, only for dn_network_backward */
    int truth_size;
    float *workspace;
    size_t workspace_size; /* floats */
    int training;          /* the current pass is a training pass */
    dn_rng rng;
};

dn_status dn_network_parse(const dn_cfg *cfg, int batch, dn_network *net);

#endif /* DN_INTERNAL_H */
