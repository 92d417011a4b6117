/* cuDNN convolutions, opened with dlopen on first use like cuBLAS (blas.c): a machine
   without cuDNN runs convolutions through im2col + cuBLAS instead (a supported set-up,
   logged once at INFO), and DARKNETPY_CUDNN=0 chooses that path. Algorithms are cuDNN's
   heuristic choices under a workspace limit (DARKNETPY_CUDNN_WORKSPACE_MB, default 1024),
   in FMA math (no TF32), so results match the CPU to rounding. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "dnn.h"

/* The part of cuDNN 9's C ABI used here (cudnn_graph.h, cudnn_ops.h, cudnn_cnn.h): handles and
   descriptors are pointers, statuses and enums ints. */
typedef int (*create_fn)(void **handle);
typedef int (*destroy_fn)(void *handle);
typedef int (*set_stream_fn)(void *handle, cudaStream_t stream);
typedef const char *(*error_string_fn)(int status);
typedef int (*set_tensor_fn)(void *desc, int format, int type, int n, int c, int h, int w);
typedef int (*set_filter_fn)(void *desc, int type, int format, int k, int c, int h, int w);
typedef int (*set_conv_fn)(void *desc, int pad_h, int pad_w, int u, int v, int dil_h, int dil_w, int mode, int type);
typedef int (*set_int_fn)(void *desc, int value);
typedef int (*get_algos_fn)(void *handle, void *a, void *b, void *conv, void *c, int requested, int *returned,
                            dn_cuda_dnn_perf *perf);
typedef int (*forward_fn)(void *handle, const float *alpha, void *x_desc, const float *x, void *w_desc,
                          const float *w, void *conv, int algo, void *ws, size_t ws_bytes, const float *beta,
                          void *y_desc, float *y);
enum { MAX_ALGOS = 16 };

static struct {
    create_fn create, create_tensor, create_filter, create_conv;
    destroy_fn destroy, destroy_tensor, destroy_filter, destroy_conv;
    set_stream_fn set_stream;
    error_string_fn error_string;
    set_tensor_fn set_tensor;
    set_filter_fn set_filter;
    set_conv_fn set_conv;
    set_int_fn set_groups, set_math;
    get_algos_fn get_fwd, get_bwd_data, get_bwd_filter;
    forward_fn forward, backward_data, backward_filter;
    size_t limit;
    char error[512];
} dnn;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* Every symbol in the table, or the first one missing. */
static const char *bind(void *h)
{
#define BIND(field, name)                                   \
    if (!(*(void **)&dnn.field = dlsym(h, name))) return name;
    BIND(create, "cudnnCreate") BIND(destroy, "cudnnDestroy") BIND(set_stream, "cudnnSetStream")
    BIND(error_string, "cudnnGetErrorString")
    BIND(create_tensor, "cudnnCreateTensorDescriptor") BIND(destroy_tensor, "cudnnDestroyTensorDescriptor")
    BIND(create_filter, "cudnnCreateFilterDescriptor") BIND(destroy_filter, "cudnnDestroyFilterDescriptor")
    BIND(create_conv, "cudnnCreateConvolutionDescriptor") BIND(destroy_conv, "cudnnDestroyConvolutionDescriptor")
    BIND(set_tensor, "cudnnSetTensor4dDescriptor") BIND(set_filter, "cudnnSetFilter4dDescriptor")
    BIND(set_conv, "cudnnSetConvolution2dDescriptor") BIND(set_groups, "cudnnSetConvolutionGroupCount")
    BIND(set_math, "cudnnSetConvolutionMathType")
    BIND(get_fwd, "cudnnGetConvolutionForwardAlgorithm_v7")
    BIND(get_bwd_data, "cudnnGetConvolutionBackwardDataAlgorithm_v7")
    BIND(get_bwd_filter, "cudnnGetConvolutionBackwardFilterAlgorithm_v7")
    BIND(forward, "cudnnConvolutionForward") BIND(backward_data, "cudnnConvolutionBackwardData")
    BIND(backward_filter, "cudnnConvolutionBackwardFilter")
#undef BIND
    return NULL;
}

static void load(void)
{
    const char *env = getenv("DARKNETPY_CUDNN");
    if (env && strcmp(env, "0") == 0) {
        snprintf(dnn.error, sizeof dnn.error, "DARKNETPY_CUDNN=0");
        return;
    }
    const char *mb = getenv("DARKNETPY_CUDNN_WORKSPACE_MB");
    dnn.limit = (size_t)(mb && atol(mb) > 0 ? atol(mb) : 1024) << 20;
    void *h = dlopen("libcudnn.so.9", RTLD_NOW | RTLD_GLOBAL);
    if (!h) {
        snprintf(dnn.error, sizeof dnn.error, "cuDNN (libcudnn.so.9) was not found: pip install \"darknetpy-engine"
                 "[cuda]\" (the nvidia-cudnn-cu13 package) to use it [%s]", dlerror());
        return;
    }
    const char *missing = bind(h);
    if (missing) {
        snprintf(dnn.error, sizeof dnn.error, "libcudnn.so.9 lacks %s: install cuDNN 9 with pip install "
                 "\"darknetpy-engine[cuda]\"", missing);
        dnn.create = NULL;
    }
}

const char *dn_cuda_dnn_error(void)
{
    pthread_once(&once, load);
    return dnn.create ? NULL : dnn.error;
}

static dn_status dnn_fail(int status, const char *what)
{
    return dn_fail(DN_ERR_DEVICE, "cuDNN failed %s: %s (cudnnStatus_t %d)", what,
                   dnn.error_string ? dnn.error_string(status) : "?", status);
}

#define DNN_TRY(expr, what)                                      \
    do {                                                         \
        const int dnn_st_ = (expr);                              \
        if (dnn_st_ != DN_DNN_SUCCESS) return dnn_fail(dnn_st_, what); \
    } while (0)

dn_status dn_cuda_dnn_create(void **handle, cudaStream_t stream)
{
    *handle = NULL;
    const char *why = dn_cuda_dnn_error();
    if (why) {
        dn_log(DN_LOG_INFO, "convolutions run as im2col + cuBLAS: %s", why);
        return DN_OK;
    }
    DNN_TRY(dnn.create(handle), "to create a handle");
    const int st = dnn.set_stream(*handle, stream);
    if (st != DN_DNN_SUCCESS) {
        dnn.destroy(*handle);
        *handle = NULL;
        return dnn_fail(st, "to set its stream");
    }
    return DN_OK;
}

void dn_cuda_dnn_destroy(void *handle)
{
    if (handle) dnn.destroy(handle);
}

void dn_cuda_dnn_free(dn_cuda_dnn *d)
{
    if (!d) return;
    if (d->x) dnn.destroy_tensor(d->x);
    if (d->y) dnn.destroy_tensor(d->y);
    if (d->w) dnn.destroy_filter(d->w);
    if (d->conv) dnn.destroy_conv(d->conv);
    free(d);
}

int dn_cuda_dnn_pick(const int *status, const size_t *memory, int n, size_t limit)
{
    for (int i = 0; i < n; i++)
        if (status[i] == DN_DNN_SUCCESS && memory[i] <= limit) return i;
    return -1;
}

/* The first of cuDNN's candidates that fits the limit into *algo, *bytes. */
static dn_status choose(const dn_cuda_perf_list *list, const char *pass, const dn_cuda_dnn_shape *sh, int *algo,
                        size_t *bytes)
{
    int status[MAX_ALGOS];
    size_t memory[MAX_ALGOS];
    for (int i = 0; i < list->n; i++) {
        status[i] = list->perf[i].status;
        memory[i] = list->perf[i].memory;
    }
    const int k = dn_cuda_dnn_pick(status, memory, list->n, dnn.limit);
    if (k < 0)
        return dn_fail(DN_ERR_DEVICE, "cuDNN has no %s algorithm for a %dx%d convolution of %d x %d x %d within the "
                       "workspace limit of %zu MiB: raise DARKNETPY_CUDNN_WORKSPACE_MB, or set DARKNETPY_CUDNN=0",
                       pass, sh->size, sh->size, sh->c, sh->h, sh->w, dnn.limit >> 20);
    *algo = list->perf[k].algo;
    *bytes = list->perf[k].memory;
    return DN_OK;
}

dn_status dn_cuda_dnn_setup(void *handle, dn_cuda_dnn **out, const dn_cuda_dnn_shape *sh, int train)
{
    dn_cuda_dnn *d = *out;
    if (d && memcmp(&d->shape, sh, sizeof *sh) == 0 && (d->trained || !train)) return DN_OK;
    if (!d) {
        if (!(d = calloc(1, sizeof *d))) return dn_fail(DN_ERR_OOM, "out of memory");
        *out = d;
        DNN_TRY(dnn.create_tensor(&d->x), "to create a descriptor");
        DNN_TRY(dnn.create_tensor(&d->y), "to create a descriptor");
        DNN_TRY(dnn.create_filter(&d->w), "to create a descriptor");
        DNN_TRY(dnn.create_conv(&d->conv), "to create a descriptor");
    }
    d->shape = (dn_cuda_dnn_shape){0}; /* set once everything below succeeded */
    DNN_TRY(dnn.set_tensor(d->x, DN_DNN_NCHW, DN_DNN_FLOAT, sh->batch, sh->c, sh->h, sh->w), "describing an input");
    DNN_TRY(dnn.set_tensor(d->y, DN_DNN_NCHW, DN_DNN_FLOAT, sh->batch, sh->n, sh->out_h, sh->out_w),
            "describing an output");
    DNN_TRY(dnn.set_filter(d->w, DN_DNN_FLOAT, DN_DNN_NCHW, sh->n, sh->c / sh->groups, sh->size, sh->size),
            "describing the weights");
    DNN_TRY(dnn.set_conv(d->conv, sh->pad, sh->pad, sh->stride_y, sh->stride_x, sh->dilation, sh->dilation,
                         DN_DNN_CROSS_CORRELATION, DN_DNN_FLOAT), "describing a convolution");
    DNN_TRY(dnn.set_groups(d->conv, sh->groups), "setting the groups");
    DNN_TRY(dnn.set_math(d->conv, DN_DNN_FMA_MATH), "setting the math type");
    dn_cuda_perf_list list;
    DNN_TRY(dnn.get_fwd(handle, d->x, d->w, d->conv, d->y, MAX_ALGOS, &list.n, list.perf), "choosing an algorithm");
    DN_TRY(choose(&list, "forward", sh, &d->fwd, &d->fwd_bytes));
    d->bwd_data_bytes = d->bwd_filter_bytes = 0;
    if (train) {
        DNN_TRY(dnn.get_bwd_data(handle, d->w, d->y, d->conv, d->x, MAX_ALGOS, &list.n, list.perf),
                "choosing an algorithm");
        DN_TRY(choose(&list, "backward-data", sh, &d->bwd_data, &d->bwd_data_bytes));
        DNN_TRY(dnn.get_bwd_filter(handle, d->x, d->y, d->conv, d->w, MAX_ALGOS, &list.n, list.perf),
                "choosing an algorithm");
        DN_TRY(choose(&list, "backward-filter", sh, &d->bwd_filter, &d->bwd_filter_bytes));
    }
    d->shape = *sh;
    d->trained = train;
    return DN_OK;
}

dn_status dn_cuda_dnn_forward(void *handle, const dn_cuda_dnn *d, const float *x, const float *w, float *y, void *ws,
                              size_t ws_bytes)
{
    const float one = 1, zero = 0;
    DNN_TRY(dnn.forward(handle, &one, d->x, x, d->w, w, d->conv, d->fwd, ws, ws_bytes, &zero, d->y, y),
            "in a convolution");
    return DN_OK;
}

dn_status dn_cuda_dnn_backward(void *handle, const dn_cuda_dnn *d, const float *x, const float *dy, const float *w,
                               float *dw, float *dx, void *ws, size_t ws_bytes)
{
    const float one = 1;
    if (dw)
        DNN_TRY(dnn.backward_filter(handle, &one, d->x, x, d->y, dy, d->conv, d->bwd_filter, ws, ws_bytes, &one, d->w,
                                    dw), "in a convolution's weight gradient");
    if (dx)
        DNN_TRY(dnn.backward_data(handle, &one, d->w, w, d->y, dy, d->conv, d->bwd_data, ws, ws_bytes, &one, d->x,
                                  dx), "in a convolution's input gradient");
    return DN_OK;
}
