/* The CUDA backend's internal API: the per-network device state, CUDA statuses
   as dn_status, cuBLAS and cuDNN (loaded at run time) and the kernel tables. */
#ifndef DN_CUDA_H
#define DN_CUDA_H

#include "../dn.h"
#include "kernels.h"

/* One device array and its length in floats. */
typedef struct dn_cuda_array {
    float *data;
    size_t n;
} dn_cuda_array;

/* A layer's device state, made by its prepare: the parameters the kernels read (in an
   inference network batch norm is folded into weights and biases; a training network keeps
   the raw arrays, their update accumulators and the layer's training scratch). */
typedef struct dn_cuda_params {
    union {
        struct {
            dn_cuda_array weights, biases, scales, mean, variance;     /* parameters */
            dn_cuda_array weight_updates, bias_updates, scale_updates; /* their accumulators */
            dn_cuda_array x_norm, batch_mean, batch_var, preact, mask; /* training scratch */
        };
        dn_cuda_array all[13];
    };
    struct dn_cuda_dnn *dnn; /* the layer's cuDNN convolution (dnn.c), NULL without cuDNN */
} dn_cuda_params;

/* One network's state on its device (dn_ctx.device). */
typedef struct dn_cuda_net {
    int ordinal;
    cudaStream_t stream;       /* every copy and kernel of the network runs on it, in order */
    void *blas;                /* cublasHandle_t bound to the stream */
    float *staging;            /* pinned host buffer for uploads ... */
    size_t staging_n;
    cudaEvent_t staged;        /* ... free again once this event has passed */
    dn_cuda_params *params;    /* by layer index */
    int n_params;
    double *sum;               /* device scalar the loss kernels reduce into */
    float *host;               /* host scratch for losses computed on the host (yolo) */
    size_t host_n;
    void *dnn;                 /* cudnnHandle_t on the stream; NULL: convolutions use im2col + cuBLAS */
    dn_cuda_array dnn_ws;      /* cuDNN's workspace, sized for the algorithms chosen */
    void *nccl;                /* ncclComm_t of the data-parallel set this network trained in (nccl.c) */
    const struct dn_cuda_net *nccl_root; /* that set's first network, and its size */
    int nccl_n;
} dn_cuda_net;

/* Host threads of the calling network call (cpu/dispatch.c): losses computed on the host use them. */
int dn_cpu_threads(void);
void dn_cpu_set_threads(int threads);

/* The state of the network a kernel runs for. */
static inline dn_cuda_net *dn_cuda_of(const dn_ctx *ctx) { return (dn_cuda_net *)ctx->device; }

/* A failed CUDA call as a dn_status: DN_ERR_OOM for out-of-memory, else DN_ERR_DEVICE,
   with the error's name and text; `what` says what was being done. */
dn_status dn_cuda_fail(cudaError_t err, const char *what);
#define DN_CUDA_TRY(expr, what)                              \
    do {                                                     \
        cudaError_t dn_cuda_err_ = (expr);                   \
        if (dn_cuda_err_ != cudaSuccess) return dn_cuda_fail(dn_cuda_err_, what); \
    } while (0)

/* *a holds exactly n floats afterwards ((re)allocated and zeroed when its size differs). */
dn_status dn_cuda_ensure(dn_cuda_net *s, dn_cuda_array *a, size_t n, const char *what);
/* Device copy of `src` (n floats, host) into *a, (re)allocated when its size differs;
   src NULL: free *a. */
dn_status dn_cuda_put(dn_cuda_net *s, dn_cuda_array *a, const float *src, size_t n, const char *what);
/* Host copy of *a (its n floats) into dst when both exist; waits for the stream. */
dn_status dn_cuda_get(dn_cuda_net *s, float *dst, const dn_cuda_array *a);
void dn_cuda_free_array(dn_cuda_array *a);
/* The slot of layer `index` (grown on demand), or NULL out of memory. */
dn_cuda_params *dn_cuda_layer_params(dn_cuda_net *s, int index);
/* The slot layer `index`'s prepare filled, or a DN_ERR_INTERNAL naming the layer. */
dn_status dn_cuda_prepared(const dn_cuda_net *s, const dn_layer *l, dn_cuda_params **out);
/* Host scratch of n floats (grown on demand). */
dn_status dn_cuda_host_scratch(dn_cuda_net *s, size_t n, float **out);
/* The loss kernels' device sum, read back (waits for the stream). */
dn_status dn_cuda_read_sum(dn_cuda_net *s, double *out);

/* ---- blas.c: cuBLAS, loaded on first use ------------------------------- */

/* A cuBLAS handle on `stream` into *handle; DN_ERR_DEVICE when cuBLAS is not installed. */
dn_status dn_cuda_blas_create(void **handle, cudaStream_t stream);
void dn_cuda_blas_destroy(void *handle);
/* Row-major C (m x n) = alpha op(A) op(B) + beta C, op(X) = X^T where trans_x. */
dn_status dn_cuda_gemm(void *handle, int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                       int lda, const float *b, int ldb, float beta, float *c, int ldc);
/* Why cuBLAS cannot be loaded, or NULL when it can (loads it). */
const char *dn_cuda_blas_error(void);

/* ---- dnn.c: cuDNN convolutions, loaded on first use -------------------------- */

/* Why cuDNN is not used (not installed, or DARKNETPY_CUDNN=0), or NULL (loads it). */
const char *dn_cuda_dnn_error(void);
/* A cuDNN handle on `stream` into *handle, NULL when cuDNN is not used. */
dn_status dn_cuda_dnn_create(void **handle, cudaStream_t stream);
void dn_cuda_dnn_destroy(void *handle);
void dn_cuda_dnn_free(struct dn_cuda_dnn *d);
/* Which cuDNN algorithm to run: the first of `n` candidates (in cuDNN's order of preference)
   that is usable (status 0) and needs at most `limit` bytes of workspace; -1 when none. */
int dn_cuda_dnn_pick(const int *status, const size_t *memory, int n, size_t limit);

/* ---- conv_passes.c: the convolution passes, through cuDNN when the network has it ---- */

/* out = the convolution of `batch` images with w (no bias). */
dn_status dn_cuda_conv_forward(const dn_layer *l, const float *in, const float *w, float *out, dn_ctx *ctx);
/* dw += the weight gradient (dw may be NULL), in_delta += the input delta (may be NULL). */
dn_status dn_cuda_conv_backward(const dn_layer *l, const float *in, const float *delta, const float *w, float *dw,
                                float *in_delta, dn_ctx *ctx);
/* Choose the layer's cuDNN algorithms (when the network uses cuDNN) and size the workspace. */
dn_status dn_cuda_conv_setup(const dn_layer *l, dn_cuda_params *dev, dn_ctx *ctx, int train);

/* ---- nccl.c: data-parallel training ----------------------------------------------- */

/* The values of NCCL 2's enums used (checked against nccl.h by tests/test_cuda.py). */
enum { DN_NCCL_SUCCESS = 0 /* ncclSuccess */, DN_NCCL_FLOAT32 = 7 /* ncclFloat32 */, DN_NCCL_SUM = 0 /* ncclSum */ };

/* Why NCCL cannot be used, or NULL (loads it). */
const char *dn_cuda_nccl_error(void);
/* The backend's all-reduce (dn_backend.allreduce): every update accumulator summed across networks. */
dn_status dn_cuda_allreduce(dn_ctx *const *ctxs, int n);
void dn_cuda_nccl_destroy(void *comm);

/* ---- SGD ---------------------------------------------------------------------- */

/* Momentum SGD (spec §4.5) on one device array pair, as the CPU's dn_sgd. */
dn_status dn_cuda_sgd_update(dn_cuda_net *s, dn_cuda_array *w, dn_cuda_array *u, const dn_update *up, float lr,
                             int decay);

/* ---- the kernel tables (cuda/<kind>.c) -------------------------------------- */

extern const dn_kernels dn_cuda_kernels_convolutional, dn_cuda_kernels_maxpool, dn_cuda_kernels_avgpool,
    dn_cuda_kernels_softmax, dn_cuda_kernels_cost, dn_cuda_kernels_dropout, dn_cuda_kernels_route,
    dn_cuda_kernels_shortcut, dn_cuda_kernels_upsample, dn_cuda_kernels_activation, dn_cuda_kernels_empty,
    dn_cuda_kernels_yolo;

#endif /* DN_CUDA_H */
