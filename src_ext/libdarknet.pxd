# Declarations from libdarknet/include/darknet.h, the engine's only API.
# Struct layouts come from the header itself (cdef extern); only used fields are named.
from libc.stdint cimport uint8_t, uint64_t

cdef extern from "darknet.h" nogil:
    ctypedef enum dn_status:
        DN_OK
        DN_ERR_IO
        DN_ERR_NOT_FOUND
        DN_ERR_CFG
        DN_ERR_WEIGHTS
        DN_ERR_SHAPE
        DN_ERR_OOM
        DN_ERR_UNSUPPORTED
        DN_ERR_CANCELLED
        DN_ERR_INTERNAL
        DN_ERR_DEVICE

    const char *dn_last_error()
    dn_status dn_cuda_device_count(int *count)
    dn_status dn_cuda_memory_info(int ordinal, size_t *free_bytes, size_t *total_bytes)
    const char *dn_cuda_library_error(const char *name)
    ctypedef void (*dn_log_fn)(int level, const char *message, void *user) noexcept
    void dn_log_set(dn_log_fn fn, void *user)

    ctypedef struct dn_network:
        pass

    ctypedef struct dn_net_info:
        int width, height, channels, inputs
        int batch, cfg_batch, subdivisions, max_batches
        float learning_rate, momentum, decay
        int burn_in
        float power
        float angle, aspect, saturation, exposure, hue
        int min_crop, max_crop, flip
        float label_smooth_eps
        uint64_t seen
        int cur_iteration
        int train, fused, n_layers, output_layer, outputs, truths

    ctypedef struct dn_layer_info:
        int index
        const char *type
        int kind
        unsigned caps
        int n_inputs
        const int *input_layers
        int in_c, in_h, in_w, inputs
        int out_c, out_h, out_w, outputs
        int batch_normalize
        int n_weights
        double bflops
        char summary[192]

    dn_status dn_network_load_cfg(const char *cfg_path, int batch, dn_network **out)
    ctypedef struct dn_load_options:
        int batch
        size_t max_memory
        int keep_outputs
        const char *device
    dn_status dn_network_load(const char *cfg_path, const dn_load_options *options, dn_network **out)
    void dn_network_free(dn_network *net)
    dn_status dn_network_info(const dn_network *net, dn_net_info *info)
    dn_status dn_network_layer_info(const dn_network *net, int index, dn_layer_info *info)
    ctypedef enum dn_attr_type:
        DN_ATTR_INT
        DN_ATTR_FLOAT
        DN_ATTR_INTS
        DN_ATTR_FLOATS
        DN_ATTR_STR
    ctypedef struct dn_attr:
        const char *name
        dn_attr_type type
        int count
        const double *values
        const char *str
    dn_status dn_network_layer_attrs(const dn_network *net, int index, dn_attr *attrs, int max_attrs,
                                     double *values, int max_values, int *n_attrs, int *n_values)
    dn_status dn_network_load_weights(dn_network *net, const char *path, int cutoff, int *layers_loaded)
    dn_status dn_network_load_weights_checked(dn_network *net, const char *path, int cutoff, int strict,
                                              int *layers_loaded)
    dn_status dn_network_save_weights(const dn_network *net, const char *path, int cutoff)
    dn_status dn_network_set_counters(dn_network *net, uint64_t seen, int cur_iteration)
    dn_status dn_network_prepare(dn_network *net)
    const char *dn_network_backend(const dn_network *net)
    dn_status dn_network_set_threads(dn_network *net, int threads)
    void dn_network_set_cancel(dn_network *net, volatile int *flag)
    dn_status dn_network_resize(dn_network *net, int width, int height)
    ctypedef struct dn_memory:
        size_t weights, activations, workspace
    dn_status dn_network_memory(const dn_network *net, dn_memory *m)
    ctypedef struct dn_training_memory:
        size_t weights, optimizer, activations, deltas, workspace, total, per_image
        int batch, subdivisions, minibatch, width, height, inputs, truths
    dn_status dn_estimate_training_memory(const char *cfg_path, int batch, int subdivisions, int width, int height,
                                          dn_training_memory *out)
    dn_status dn_check_training_fits(const char *cfg_path, size_t limit)

    ctypedef struct dn_cfg:
        pass
    dn_status dn_cfg_load(const char *path, int sections, dn_cfg **out)
    void dn_cfg_release(dn_cfg *cfg)
    int dn_cfg_count(const dn_cfg *cfg)
    dn_status dn_cfg_section_info(const dn_cfg *cfg, int i, const char **type, int *line, int *n_options)
    dn_status dn_cfg_option(const dn_cfg *cfg, int i, int j, const char **key, const char **value, int *line)
    enum:
        DN_CAP_WEIGHTS
        DN_CAP_TRAINABLE
        DN_CAP_COST
        DN_CAP_DETECTION
        DN_CAP_CLASSIFIER

    dn_status dn_network_forward(dn_network *net, const float *input, int n)
    dn_status dn_network_layer_output(const dn_network *net, int index, const float **data, int *count)
    dn_status dn_network_layer_output_copy(const dn_network *net, int index, float *dst, size_t n)
    dn_status dn_network_keep_output(dn_network *net, int index)
    dn_status dn_network_layer_delta(const dn_network *net, int index, const float **data, int *count)
    dn_status dn_network_layer_delta_copy(const dn_network *net, int index, float *dst, size_t n) nogil
    ctypedef struct dn_detection_stats:
        int count
        float avg_iou, avg_class, avg_obj, avg_noobj, recall50, recall75
        float class_loss, iou_loss, total_loss
        int total_bbox, rewritten_bbox
        char line[256]
    dn_status dn_network_detection_stats(const dn_network *net, int index, dn_detection_stats *out)
    dn_status dn_network_train_step(dn_network *net, const float *x, const float *y, int truth_size,
                                    float *loss)
    dn_status dn_network_train_step_parallel(dn_network *const *nets, int n, const float *x, const float *y,
                                             int truth_size, float *loss)
    void dn_network_phase_times(const dn_network *net, double seconds[3])
    dn_status dn_network_time_layers(dn_network *net, int on)
    long dn_network_layer_times(const dn_network *net, double *seconds)
    dn_status dn_network_backward(dn_network *net, const float *x, const float *y, int truth_size, double *loss,
                                  float *input_delta)
    dn_status dn_network_param(dn_network *net, int index, const char *name, float **data, float **delta,
                               int *count)
    float dn_network_current_rate(const dn_network *net)
    void dn_network_seed(dn_network *net, uint64_t seed)
    dn_status dn_resize_image(const float *src, int c, int h, int w, float *dst, int oh, int ow)
    void dn_hsv_jitter(float *rgb, size_t n, float dhue, float dsat, float dexp)
    ctypedef struct dn_crop_augment:
        int width, height, min_crop, max_crop
        float angle, aspect
        int flip
        float hue, saturation, exposure
    enum: DN_AUGMENT_DRAWS
    dn_status dn_augment_classifier(const uint8_t *bgr, int h, int w, const dn_crop_augment *aug, const double *u,
                                    float *dst)

    ctypedef struct dn_detections:
        int n, classes
        float *bbox
        float *objectness
        float *prob
        int capacity

    ctypedef struct dn_detector_info:
        int layer, classes, nms_kind
        float beta_nms

    dn_status dn_network_detector_info(const dn_network *net, dn_detector_info *info)
    dn_status dn_network_boxes(const dn_network *net, int b, int img_w, int img_h, float thresh, float hier,
                               int letter, int relative, dn_detections *out)
    void dn_detections_free(dn_detections *d)
    dn_status dn_nms(dn_detections *d, float thresh, int kind, float beta)
    dn_status dn_resize_image_window(const float *src, int c, int h, int w, float *dst, int oh, int ow, int x0,
                                     int y0, int cw, int ch)


cdef extern from "interrupt.h":
    volatile int *dnpy_interrupt_flag()
    int dnpy_catch_sigint()
    int dnpy_release_sigint()
