/* cuBLAS, opened with dlopen on first use: importing darknetpy never needs it, and a
   machine without it gets a DN_ERR_DEVICE naming the package that provides it. The
   library is found through the extension's rpath (the nvidia-cublas wheel's folder),
   the loader's usual search, or a copy Python loaded already (darknetpy.cuda). */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#include "cuda.h"

/* The part of cuBLAS's C ABI used here (cublas_v2.h): handles are pointers,
   statuses and operations are ints, 0 = success / no transpose. */
typedef int (*create_fn)(void **handle);
typedef int (*destroy_fn)(void *handle);
typedef int (*set_stream_fn)(void *handle, cudaStream_t stream);
typedef int (*sgemm_fn)(void *handle, int trans_a, int trans_b, int m, int n, int k, const float *alpha,
                        const float *a, int lda, const float *b, int ldb, const float *beta, float *c, int ldc);
enum { BLAS_SUCCESS = 0, BLAS_ALLOC_FAILED = 3, BLAS_OP_N = 0, BLAS_OP_T = 1 };

static struct {
    create_fn create;
    destroy_fn destroy;
    set_stream_fn set_stream;
    sgemm_fn sgemm;
    char error[512];
} blas;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void)
{
    char lt[64], name[64];
    const int major = CUDART_VERSION / 1000;
    snprintf(lt, sizeof lt, "libcublasLt.so.%d", major);
    snprintf(name, sizeof name, "libcublas.so.%d", major);
    dlopen(lt, RTLD_NOW | RTLD_GLOBAL); /* libcublas needs it and may not find it by itself */
    void *h = dlopen(name, RTLD_NOW | RTLD_GLOBAL);
    if (!h) {
        snprintf(blas.error, sizeof blas.error, "cuBLAS (%s) was not found: install it with pip install "
                 "\"darknetpy-engine[cuda]\" (the nvidia-cublas package) [%s]", name, dlerror());
        return;
    }
    blas.create = (create_fn)dlsym(h, "cublasCreate_v2");
    blas.destroy = (destroy_fn)dlsym(h, "cublasDestroy_v2");
    blas.set_stream = (set_stream_fn)dlsym(h, "cublasSetStream_v2");
    blas.sgemm = (sgemm_fn)dlsym(h, "cublasSgemm_v2");
    if (!blas.create || !blas.destroy || !blas.set_stream || !blas.sgemm) {
        snprintf(blas.error, sizeof blas.error, "%s lacks the functions darknetpy uses: install cuBLAS %d with pip "
                 "install \"darknetpy-engine[cuda]\"", name, major);
        blas.create = NULL;
    }
}

static dn_status blas_fail(int status, const char *what)
{
    if (status == BLAS_ALLOC_FAILED) return dn_fail(DN_ERR_OOM, "cuBLAS ran out of device memory in %s", what);
    return dn_fail(DN_ERR_DEVICE, "cuBLAS failed in %s (cublasStatus_t %d)", what, status);
}

const char *dn_cuda_blas_error(void)
{
    pthread_once(&once, load);
    return blas.create ? NULL : blas.error;
}

dn_status dn_cuda_blas_create(void **handle, cudaStream_t stream)
{
    *handle = NULL;
    if (dn_cuda_blas_error()) return dn_fail(DN_ERR_DEVICE, "%s", blas.error);
    int st = blas.create(handle);
    if (st != BLAS_SUCCESS) return blas_fail(st, "cublasCreate");
    st = blas.set_stream(*handle, stream);
    if (st != BLAS_SUCCESS) {
        dn_cuda_blas_destroy(*handle);
        *handle = NULL;
        return blas_fail(st, "cublasSetStream");
    }
    return DN_OK;
}

void dn_cuda_blas_destroy(void *handle)
{
    if (handle) blas.destroy(handle);
}

dn_status dn_cuda_gemm(void *handle, int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                       int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    /* cuBLAS is column-major: row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T,
       where each array read column-major is the transpose of its row-major self */
    int st = blas.sgemm(handle, trans_b ? BLAS_OP_T : BLAS_OP_N, trans_a ? BLAS_OP_T : BLAS_OP_N, n, m, k, &alpha,
                        b, ldb, a, lda, &beta, c, ldc);
    return st == BLAS_SUCCESS ? DN_OK : blas_fail(st, "a convolution's SGEMM");
}
