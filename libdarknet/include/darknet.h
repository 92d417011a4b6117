/*
 * libdarknet: a darknet-compatible neural-network engine.
 *
 * This header is the engine's only public API (and the only ABI the Cython
 * extension sees). Handles are opaque. Every fallible call returns a
 * dn_status; on failure dn_last_error() holds a message naming the file,
 * line, layer and the fix. Nothing here exits, aborts or prints.
 *
 * Tensors are float32 NCHW, C order. A network is not safe for concurrent
 * calls; distinct networks are independent.
 */
#ifndef DARKNET_H
#define DARKNET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dn_status {
    DN_OK = 0,
    DN_ERR_IO,          /* file could not be read or written */
    DN_ERR_NOT_FOUND,   /* file does not exist */
    DN_ERR_CFG,         /* bad or unsupported .cfg content */
    DN_ERR_WEIGHTS,     /* bad .weights content */
    DN_ERR_SHAPE,       /* argument of the wrong size */
    DN_ERR_OOM,         /* allocation failed */
    DN_ERR_UNSUPPORTED, /* valid request this build cannot serve */
    DN_ERR_CANCELLED,   /* interrupted through the cancel callback */
    DN_ERR_INTERNAL,    /* broken invariant: a bug in libdarknet */
    DN_ERR_DEVICE       /* a device (GPU) is unavailable or failed */
} dn_status;

/* Message of the last failure on this thread (never NULL). */
const char *dn_last_error(void);

/* Log sink: libdarknet never prints. level follows Python logging (10 debug .. 40 error). */
typedef void (*dn_log_fn)(int level, const char *message, void *user);
void dn_log_set(dn_log_fn fn, void *user);

typedef struct dn_network dn_network;

/* [net] section values, as parsed (spec §1.3). */
typedef struct dn_net_info {
    int width, height, channels, inputs;
    int batch;          /* mini-batch the network was built for */
    int cfg_batch;      /* batch= of the cfg */
    int subdivisions;
    int max_batches;
    float learning_rate, momentum, decay;
    int burn_in;
    float power;
    float angle, aspect, saturation, exposure, hue;
    int min_crop, max_crop, flip;
    float label_smooth_eps;
    uint64_t seen;
    int cur_iteration;
    int train;          /* built with training buffers */
    int fused;          /* inference passes fold batch norm into the convolutions */
    int n_layers;
    int output_layer;   /* index of the last layer that is not [cost] */
    int outputs;        /* values per sample of that layer */
    int truths;         /* truth values per sample training takes: outputs, or for a detector
                           max boxes x 6 (x y w h class track_id, spec D5.1) */
} dn_net_info;

/* What a layer kind can do (dn_layer_info.caps). */
enum {
    DN_CAP_WEIGHTS = 1,     /* may store parameters in a .weights file */
    DN_CAP_TRAINABLE = 2,   /* has parameters that training updates */
    DN_CAP_COST = 4,        /* computes a loss from truth in training */
    DN_CAP_DETECTION = 8,   /* a detection head ([yolo], ...) */
    DN_CAP_CLASSIFIER = 16  /* can end a classifier (its output is one score per class) */
};

/* Per-layer facts behind darknet's layer table. */
typedef struct dn_layer_info {
    int index;
    const char *type;   /* canonical section name, e.g. "convolutional" */
    int kind;           /* index of the kind in the engine's layer table */
    unsigned caps;      /* DN_CAP_* of the kind */
    int n_inputs;       /* layers this one reads (input_layers[0..n_inputs)) ... */
    const int *input_layers; /* ... their indices, -1 = the network input; owned by the network */
    int in_c, in_h, in_w, inputs;
    int out_c, out_h, out_w, outputs;
    int batch_normalize;
    int n_weights;      /* floats this layer stores in a .weights file */
    double bflops;
    char summary[192];  /* darknet's console line for this layer (spec Appendix A) */
} dn_layer_info;

/*
 * Build a network from a .cfg file.
 *   batch > 0: mini-batch of that size, inference buffers only (what darknet's
 *              predict/valid/partial do with batch 1).
 *   batch <= 0: the cfg's batch/subdivisions, with training buffers.
 * On success *out owns the network; free it with dn_network_free.
 */
dn_status dn_network_load_cfg(const char *cfg_path, int batch, dn_network **out);

/* How to build a network (zero-initialise, then set what you need). */
typedef struct dn_load_options {
    int batch;           /* as dn_network_load_cfg's batch */
    size_t max_memory;   /* bytes the network may hold; 0: what the machine has available. A network
                            needing more fails with DN_ERR_OOM naming the batch that fits. */
    const char *device;  /* "cpu" (NULL too), "cuda" (device 0) or "cuda:N". A device that is absent or
                            unusable fails with DN_ERR_DEVICE saying why (there is no fallback to the CPU). */
    int keep_outputs;    /* inference: keep every layer's output for dn_network_layer_output (0: an output
                            no later layer reads shares memory with others, see dn_network_keep_output) */
} dn_load_options;
dn_status dn_network_load(const char *cfg_path, const dn_load_options *options, dn_network **out);
void dn_network_free(dn_network *net);

/* Name of the backend running the network, e.g. "cpu (avx2)". */
const char *dn_network_backend(const dn_network *net);

/* CPU threads for this network's calls (<= 0: OpenMP's default). Per network: it
   changes neither other networks nor the calling thread's OpenMP settings. */
dn_status dn_network_set_threads(dn_network *net, int threads);

/* While *flag is nonzero, long calls stop at the next layer boundary and return
   DN_ERR_CANCELLED (NULL: no cancellation). The flag may be set from a signal handler. */
void dn_network_set_cancel(dn_network *net, volatile int *flag);

/* Rebuild every layer for a new input size (upstream's resize_network), keeping all
   parameters and training state. Fails (network unchanged) when a layer's parameter
   count depends on the size ([connected] after a spatial layer). */
dn_status dn_network_resize(dn_network *net, int width, int height);

/* Bytes the network holds, by purpose. */
typedef struct dn_memory {
    size_t weights;      /* the rest: parameters, their updates, prepared copies and the layers' own arrays
                            (training: batch-norm and pre-activation buffers too, see
                            dn_estimate_training_memory for that split) */
    size_t activations;  /* layer outputs (an inference network's arena), deltas, the input and truth */
    size_t workspace;    /* shared scratch */
} dn_memory;
dn_status dn_network_memory(const dn_network *net, dn_memory *m);

/* What a training network of a cfg allocates, in bytes, computed without allocating it. */
typedef struct dn_training_memory {
    size_t weights;      /* parameters and the layers' other fixed arrays */
    size_t optimizer;    /* update (momentum) arrays of the trained parameters */
    size_t activations;  /* layer outputs, the input and truth buffers, per-layer training scratch */
    size_t deltas;       /* layer deltas */
    size_t workspace;    /* shared scratch */
    size_t total;        /* their sum */
    size_t per_image;    /* of the total, per image of the mini-batch */
    int batch, subdivisions, minibatch, width, height, inputs, truths; /* as resolved */
} dn_training_memory;
/* batch, subdivisions, width, height: 0 for the cfg's values. A training build (dn_network_load
   with batch <= 0) checks this total against the memory limit first and fails with DN_ERR_OOM
   naming the smallest subdivisions (or else the input size) that fits. */
dn_status dn_estimate_training_memory(const char *cfg_path, int batch, int subdivisions, int width, int height,
                                      dn_training_memory *out);
/* DN_OK when a training build of the cfg fits in `limit` bytes (0: the memory available now), else
   DN_ERR_OOM with the advice a training build would give. */
dn_status dn_check_training_fits(const char *cfg_path, size_t limit);

dn_status dn_network_info(const dn_network *net, dn_net_info *info);
dn_status dn_network_layer_info(const dn_network *net, int index, dn_layer_info *info);

/* One resolved hyper-parameter of a layer (cfg value or its default, as the parser settled it). */
typedef enum dn_attr_type { DN_ATTR_INT, DN_ATTR_FLOAT, DN_ATTR_INTS, DN_ATTR_FLOATS, DN_ATTR_STR } dn_attr_type;
typedef struct dn_attr {
    const char *name;       /* the cfg key, e.g. "stride_x", "activation", "anchors" */
    dn_attr_type type;
    int count;              /* numbers in values (1 for INT/FLOAT, 0 for STR) */
    const double *values;   /* into the caller's values buffer */
    const char *str;        /* DN_ATTR_STR: the value, owned by the network */
} dn_attr;
/* The hyper-parameters of layer `index`: at most max_attrs entries into attrs and max_values
   numbers into values; *n_attrs and *n_values receive the totals, so a call with max 0 sizes
   the buffers. Device-free; every layer kind lists what its inference depends on. */
dn_status dn_network_layer_attrs(const dn_network *net, int index, dn_attr *attrs, int max_attrs, double *values,
                                 int max_values, int *n_attrs, int *n_values);

/*
 * Read a darknet .weights file into layers [0, cutoff) (cutoff <= 0: all).
 * Short files load as upstream does (spec §2.3); *layers_loaded receives the
 * index darknet prints in "Done! Loaded %d layers". Clears any fusion.
 */
dn_status dn_network_load_weights(dn_network *net, const char *path, int cutoff, int *layers_loaded);
/* The same; a file shorter or longer than the network's records fails with
   DN_ERR_WEIGHTS when `strict`, else it loads what fits and logs a warning. */
dn_status dn_network_load_weights_checked(dn_network *net, const char *path, int cutoff, int strict,
                                          int *layers_loaded);

/*
 * Write layers [0, cutoff) (cutoff <= 0: all) in darknet's format, byte for
 * byte as upstream's writer; seen is recomputed from cur_iteration (spec §2.1).
 * The file is written to a temporary name and renamed: never half-written. A
 * symbolic link is written through; a directory or device is refused.
 */
dn_status dn_network_save_weights(const dn_network *net, const char *path, int cutoff);

/* Set the training counters (spec §2.1). */
dn_status dn_network_set_counters(dn_network *net, uint64_t seen, int cur_iteration);

/* Prepare for inference: fold batch norm into convolution weights (spec §3.3) and
   let the backend transform them. Stays on: after new weights or a training step
   the next inference pass prepares again. Raw weights are kept for saving. */
dn_status dn_network_prepare(dn_network *net);

/*
 * Inference forward of n samples (n <= batch), input float32 (n, C, H, W).
 * Layer outputs stay valid until the next call.
 */
dn_status dn_network_forward(dn_network *net, const float *input, int n);

/* Output of layer `index` of the last forward: batch * outputs floats, owned by the network
   (in the device's memory on a GPU: read it with dn_network_layer_output_copy). */
dn_status dn_network_layer_output(const dn_network *net, int index, const float **data, int *count);
/* An inference network keeps the outputs of its detection heads, its output layer and its last
   layer; the memory of any other output is reused once the layers that read it have run, and
   dn_network_layer_output fails for it (DN_ERR_SHAPE). Keep layer `index`'s output (-1: every
   layer's) from the next forward on. Training networks keep every output. */
dn_status dn_network_keep_output(dn_network *net, int index);
/* Copy the first n floats of that output to host memory dst, on any device. */
dn_status dn_network_layer_output_copy(const dn_network *net, int index, float *dst, size_t n);

/* CUDA devices. In a build without CUDA, or without a usable driver and GPU, these fail
   with DN_ERR_DEVICE and a message saying why. */
dn_status dn_cuda_device_count(int *count);
/* Free and total bytes of memory of device `ordinal`. */
dn_status dn_cuda_memory_info(int ordinal, size_t *free_bytes, size_t *total_bytes);
/* Why GPU library `name` ("cublas", "cudnn" or "nccl") cannot be used, or NULL when it loads (no
   GPU needed to tell). Without cuDNN, convolutions run as im2col + cuBLAS; NCCL is needed only
   to train on several GPUs. */
const char *dn_cuda_library_error(const char *name);

/* Delta of layer `index` from the last training pass (batch * outputs floats; darknet's sign:
   the negative gradient of the loss), owned by the network; *count is 0 without training buffers. */
dn_status dn_network_layer_delta(const dn_network *net, int index, const float **data, int *count);
/* Copy the first n values of layer `index`'s delta into dst (host memory, from any device). */
dn_status dn_network_layer_delta_copy(const dn_network *net, int index, float *dst, size_t n);

/* A detection head's statistics of its last training pass (the last mini-batch), as upstream
   prints them per head (spec D5.7). Ratios use max(count, 1). */
typedef struct dn_detection_stats {
    int count;              /* truth-to-anchor assignments */
    float avg_iou;          /* mean IoU of the assigned predictions with their truth */
    float avg_class;        /* mean probability of the true class there */
    float avg_obj;          /* mean objectness there */
    float avg_noobj;        /* mean objectness of every prediction */
    float recall50, recall75; /* share of assignments with IoU > .5 / > .75 */
    float class_loss, iou_loss, total_loss; /* per image, as printed */
    int total_bbox, rewritten_bbox; /* assignments; those to a slot that already had a box delta */
    char line[256];         /* upstream's console line ("v3 (...) Region N Avg (IOU: ...") */
} dn_detection_stats;
/* Statistics of detection layer `index`; DN_ERR_SHAPE for other layers. */
dn_status dn_network_detection_stats(const dn_network *net, int index, dn_detection_stats *out);

/*
 * One darknet training iteration (spec §4.1): x holds batch*subdivisions
 * samples, y their truth vectors (truth_size = dn_net_info.truths each). Forward+backward per
 * mini-batch, one SGD update. *loss receives darknet's per-image loss.
 */
dn_status dn_network_train_step(dn_network *net, const float *x, const float *y, int truth_size, float *loss);
/*
 * One data-parallel training iteration of n networks built from the same cfg with the same
 * parameters, one per device (n GPUs; host networks also work): network i takes samples
 * [i*m, (i+1)*m) of x/y, m = batch*subdivisions, in its own thread; the update accumulators are
 * summed across them (NCCL on CUDA) and every network applies the same update of n*m images, so
 * their weights stay equal (batch-norm statistics stay per device). Networks 1.. must start
 * with empty accumulators (fresh, or only trained by this call). *loss: the per-image loss.
 */
dn_status dn_network_train_step_parallel(dn_network *const *nets, int n, const float *x, const float *y,
                                         int truth_size, float *loss);
/* Wall seconds of the phases of the last train_step (or backward, update 0): forward,
   backward (each summed over its mini-batches) and update; for benchmarks. */
void dn_network_phase_times(const dn_network *net, double seconds[3]);
/* Per-layer timing of the forwards that follow (on the CPU backend; off when a network is
   built): on = 1 starts it from zero, on = 0 stops it. dn_network_layer_times writes each
   layer's wall seconds summed over the timed forwards (a batch run image by image counts
   once) into seconds[n_layers] and returns how many forwards that is. */
dn_status dn_network_time_layers(dn_network *net, int on);
long dn_network_layer_times(const dn_network *net, double *seconds);

/*
 * Inspection hook for gradient checks (training does not need it): one
 * training-mode forward and backward of a single mini-batch (x: batch samples,
 * y: their truth vectors), with no update and no change to the counters.
 * Every parameter's update accumulator is reset first (momentum is discarded),
 * so afterwards it holds this mini-batch's delta: darknet's NEGATIVE gradient
 * (spec notation). *loss receives the mini-batch's network cost (spec §4.2);
 * input_delta, if not NULL, receives the delta of the input (batch * inputs).
 */
dn_status dn_network_backward(dn_network *net, const float *x, const float *y, int truth_size, double *loss,
                              float *input_delta);

/*
 * Parameter array `name` of layer `index`: "weights", "biases", "scales",
 * "rolling_mean" or "rolling_variance". *data receives the values (writable; a
 * fused network keeps using its folded copy until dn_network_fuse), *delta the
 * update accumulator or NULL when there is none, *count the number of floats.
 * DN_ERR_SHAPE when the layer has no such array.
 */
dn_status dn_network_param(dn_network *net, int index, const char *name, float **data, float **delta, int *count);

/* Learning rate the schedule gives for the current batch (spec §4.6). */
float dn_network_current_rate(const dn_network *net);

/* Seed of the network's random generator (dropout, initialisation). */
void dn_network_seed(dn_network *net, uint64_t seed);

/*
 * darknet's resize_image (spec §5.2): corner-aligned bilinear, horizontal
 * pass first, with upstream's last-row quirk. src (c, h, w) -> dst (c, oh, ow).
 */
dn_status dn_resize_image(const float *src, int c, int h, int w, float *dst, int oh, int ow);
/* The cw x ch window at (x0, y0) of that resize, computed alone (same values, no full-size buffer):
   darknet's resize-then-crop for images whose resize would not fit in memory. dst is (c, ch, cw). */
dn_status dn_resize_image_window(const float *src, int c, int h, int w, float *dst, int oh, int ow, int x0, int y0,
                                 int cw, int ch);

/* darknet's HSV jitter (spec §5.5, classification and detection) of an RGB image of n pixels in
   three planes, in place: hue in [0, 1) shifted by dhue and wrapped once, saturation times dsat,
   value times dexp, back to RGB clamped to [0, 1]. */
void dn_hsv_jitter(float *rgb, size_t n, float dhue, float dsat, float dexp);

/* darknet's classification augmentation settings (spec §5.5: the [net] keys of these names). */
typedef struct dn_crop_augment {
    int width, height, min_crop, max_crop;
    float angle, aspect;
    int flip;
    float hue, saturation, exposure;
} dn_crop_augment;

#define DN_AUGMENT_DRAWS 12 /* uniform [0, 1) draws one image's augmentation takes */

/*
 * darknet's classification augmentation (spec §5.5) of an 8-bit BGR (h, w, 3) image, from its
 * draws u: aspect (u0, u1), crop size (u2), angle (u3), shift (u4, u5), flip (u6), hue (u7),
 * saturation (u8, u9), exposure (u10, u11). The S x S crop (S the larger network side) samples
 * the source bilinearly (pixel centres on integers, zeros outside), is mirrored, HSV-jittered
 * (dn_hsv_jitter; skipped when it is the identity) and resized to the network (resize_image).
 * dst: (3, height, width) RGB.
 */
dn_status dn_augment_classifier(const uint8_t *bgr, int h, int w, const dn_crop_augment *aug,
                                const double u[DN_AUGMENT_DRAWS], float *dst);

/*
 * darknet's key=value reader (spec §1.1), for .cfg and .data files: all
 * whitespace removed, '#' and ';' lines skipped. With sections=0, options
 * before any [section] are allowed (they form section 0 with an empty type).
 */
typedef struct dn_cfg dn_cfg;
dn_status dn_cfg_load(const char *path, int sections, dn_cfg **out);
void dn_cfg_release(dn_cfg *cfg);
int dn_cfg_count(const dn_cfg *cfg);
/* Section i: its "[type]", line and option count. */
dn_status dn_cfg_section_info(const dn_cfg *cfg, int i, const char **type, int *line, int *n_options);
/* Option j of section i. */
dn_status dn_cfg_option(const dn_cfg *cfg, int i, int j, const char **key, const char **value, int *line);

/* ---- detection (spec D1, D2) -------------------------------------------- */

/* Candidate boxes of one image, as upstream's detection records. */
typedef struct dn_detections {
    int n;              /* records */
    int classes;        /* classes of the first detection head */
    float *bbox;        /* n x 4: centre x, y, width, height (relative or pixels) */
    float *objectness;  /* n */
    float *prob;        /* n x classes: objectness x class probability, 0 where <= thresh */
    int capacity;       /* records allocated (internal) */
} dn_detections;

/* The last detection head of a network: what upstream's detector commands consult. */
typedef struct dn_detector_info {
    int layer;          /* index of the last detection layer, -1 when there is none */
    int classes;
    int nms_kind;       /* DN_NMS_* */
    float beta_nms;
} dn_detector_info;

enum { DN_NMS_DEFAULT = 0, DN_NMS_GREEDY = 1, DN_NMS_DIOU = 2 };

dn_status dn_network_detector_info(const dn_network *net, dn_detector_info *info);

/*
 * upstream's get_network_boxes for batch item `b` of the last forward: every
 * detection head in network order appends its records (boxes corrected for an
 * image of img_w x img_h fed plainly resized or, with letter, letterboxed;
 * relative to the image, or in its pixels when relative is 0).
 * *out must be zeroed (or reused); free it with dn_detections_free.
 */
dn_status dn_network_boxes(const dn_network *net, int b, int img_w, int img_h, float thresh, float hier,
                           int letter, int relative, dn_detections *out);
void dn_detections_free(dn_detections *d);

/*
 * upstream's NMS in place: records with objectness 0 move to the end, then per
 * class a sort by that class's score (stable, descending) and suppression of
 * later boxes whose overlap with a kept one exceeds thresh: IoU (DN_NMS_DEFAULT),
 * DIoU with exponent 0.6 (DN_NMS_GREEDY) or exponent beta (DN_NMS_DIOU).
 * The array is left in the order of the last class's sort. NaN scores are set to 0 first.
 */
dn_status dn_nms(dn_detections *d, float thresh, int kind, float beta);

#ifdef __cplusplus
}
#endif
#endif /* DARKNET_H */
