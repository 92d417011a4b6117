/* The CUDA backend's internal API: the per-network device state, CUDA statuses
   as dn_status, cuBLAS (loaded at run time) and the kernel tables. */
#ifndef DN_CUDA_H
#define DN_CUDA_H

#include "../dn.h"
#include "kernels.h"

/* Device copies of one layer's parameters, made by its prepare. */
typedef struct dn_cuda_params {
    float *weights, *biases;
    size_t n_weights, n_biases;
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
} dn_cuda_net;

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

/* Device copies of a layer's parameters: `src` (n floats, host) into *dst, (re)allocated
   when its size *cap differs. */
dn_status dn_cuda_put(dn_cuda_net *s, float **dst, size_t *cap, const float *src, size_t n, const char *what);
/* The parameter slot of layer `index` (grown on demand), or NULL out of memory. */
dn_cuda_params *dn_cuda_layer_params(dn_cuda_net *s, int index);

/* ---- blas.c: cuBLAS, loaded on first use ------------------------------- */

/* A cuBLAS handle on `stream` into *handle; DN_ERR_DEVICE when cuBLAS is not installed. */
dn_status dn_cuda_blas_create(void **handle, cudaStream_t stream);
void dn_cuda_blas_destroy(void *handle);
/* Row-major C (m x n) = A (m x k) * B (k x n), no transposes. */
dn_status dn_cuda_gemm(void *handle, int m, int n, int k, const float *a, int lda, const float *b, int ldb,
                       float *c, int ldc);

/* ---- the kernel tables (cuda/<kind>.c) -------------------------------------- */

extern const dn_kernels dn_cuda_kernels_convolutional, dn_cuda_kernels_maxpool, dn_cuda_kernels_avgpool,
    dn_cuda_kernels_softmax, dn_cuda_kernels_cost, dn_cuda_kernels_dropout, dn_cuda_kernels_route,
    dn_cuda_kernels_shortcut, dn_cuda_kernels_upsample, dn_cuda_kernels_activation, dn_cuda_kernels_empty,
    dn_cuda_kernels_yolo;

#endif /* DN_CUDA_H */
