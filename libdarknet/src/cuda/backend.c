/* The CUDA backend: one dn_backend per device ("cuda:N"), device memory, copies
   through pinned staging on the network's stream, and the device queries. The
   CUDA runtime is linked statically and loads the driver (libcuda.so.1) itself
   on first use, so importing darknetpy works on machines without one. */
#include <dlfcn.h>
#include <pthread.h>
#include <string.h>

#include "cuda.h"

#define MAX_DEVICES 64

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int n_devices;
static cudaError_t count_error;
static dn_backend backends[MAX_DEVICES];
static char names[MAX_DEVICES][16];

/* The network whose call runs on this thread (set by begin): alloc, upload and
   download get no context and work on its device and stream. */
static __thread dn_cuda_net *current;

dn_status dn_cuda_fail(cudaError_t err, const char *what)
{
    cudaGetLastError(); /* clear a non-sticky error so the next call starts clean */
    const dn_status st = err == cudaErrorMemoryAllocation ? DN_ERR_OOM : DN_ERR_DEVICE;
    return dn_fail(st, "CUDA failed %s: %s (%s)%s", what, cudaGetErrorString(err), cudaGetErrorName(err),
                   st == DN_ERR_OOM ? "; lower batch or the input size, or free the GPU's memory" : "");
}

/* Why CUDA is unusable, from the error of cudaGetDeviceCount. */
static dn_status unavailable(cudaError_t err)
{
    if (err == cudaErrorInsufficientDriver || err == cudaErrorNoDevice) {
        void *driver = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_NOLOAD);
        if (!driver) driver = dlopen("libcuda.so.1", RTLD_LAZY);
        if (!driver) return dn_fail(DN_ERR_DEVICE, "no NVIDIA driver: libcuda.so.1 was not found (this machine "
                                    "has no usable NVIDIA GPU, or its driver is not installed)");
        dlclose(driver);
        if (err == cudaErrorNoDevice) {
            const char *visible = getenv("CUDA_VISIBLE_DEVICES");
            return dn_fail(DN_ERR_DEVICE, "the NVIDIA driver found no CUDA GPU%s%s", visible ?
                           " (CUDA_VISIBLE_DEVICES=" : "", visible ? visible : "");
        }
        return dn_fail(DN_ERR_DEVICE, "the NVIDIA driver is too old for CUDA %d.%d, which this build needs: "
                       "update the driver", CUDART_VERSION / 1000, CUDART_VERSION % 1000 / 10);
    }
    return dn_cuda_fail(err, "to find the GPUs");
}

/* ---- memory ---------------------------------------------------------------- */

static dn_status alloc(dn_tensor *t, size_t n, const char *what)
{
    dn_cuda_net *s = current;
    *t = (dn_tensor){0};
    if (!s) return dn_fail(DN_ERR_INTERNAL, "CUDA allocation of %s outside a network call", what);
    t->device = &backends[s->ordinal];
    if (!n) return DN_OK;
    cudaError_t err = cudaMalloc((void **)&t->data, sizeof(float) * n);
    if (err == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        return dn_fail(DN_ERR_OOM, "out of memory on %s allocating %zu MiB for %s (%zu of %zu MiB free): lower "
                       "batch or the input size", backends[s->ordinal].name, (sizeof(float) * n) >> 20, what,
                       free_b >> 20, total_b >> 20);
    }
    DN_CUDA_TRY(err, "to allocate device memory");
    t->n = n;
    dn_alloc_count(sizeof(float) * n); /* into the network's bytes, as host allocations are */
    DN_CUDA_TRY(cudaMemsetAsync(t->data, 0, sizeof(float) * n, s->stream), "to zero device memory");
    return DN_OK;
}

static void release(dn_tensor *t)
{
    if (t->data) cudaFree(t->data);
    *t = (dn_tensor){0};
}

/* Host -> device through the pinned staging buffer, asynchronously on the stream. */
static dn_status upload(dn_tensor *dst, size_t offset, const float *src, size_t n)
{
    dn_cuda_net *s = current;
    if (!n) return DN_OK;
    DN_CUDA_TRY(cudaEventSynchronize(s->staged), "waiting for an earlier upload");
    if (s->staging_n < n) {
        cudaFreeHost(s->staging);
        s->staging = NULL;
        s->staging_n = 0;
        DN_CUDA_TRY(cudaMallocHost((void **)&s->staging, sizeof(float) * n), "to allocate pinned host memory");
        s->staging_n = n;
    }
    memcpy(s->staging, src, sizeof(float) * n);
    DN_CUDA_TRY(cudaMemcpyAsync(dst->data + offset, s->staging, sizeof(float) * n, cudaMemcpyHostToDevice,
                                s->stream), "copying to the GPU");
    DN_CUDA_TRY(cudaEventRecord(s->staged, s->stream), "recording an upload");
    return DN_OK;
}

/* Device -> host; waits for the stream, so errors of earlier kernels surface here. */
static dn_status download(float *dst, const dn_tensor *src, size_t offset, size_t n)
{
    dn_cuda_net *s = current;
    if (!n) return DN_OK;
    DN_CUDA_TRY(cudaMemcpyAsync(dst, src->data + offset, sizeof(float) * n, cudaMemcpyDeviceToHost, s->stream),
                "copying from the GPU");
    DN_CUDA_TRY(cudaStreamSynchronize(s->stream), "running the network");
    return DN_OK;
}

static dn_status zero(dn_tensor *t, size_t offset, size_t n)
{
    DN_CUDA_TRY(cudaMemsetAsync(t->data + offset, 0, sizeof(float) * n, current->stream), "to zero device memory");
    return DN_OK;
}

dn_status dn_cuda_ensure(dn_cuda_net *s, dn_cuda_array *a, size_t n, const char *what)
{
    if (a->data && a->n == n) return DN_OK;
    if (s != current) /* alloc works on the device of the network whose call runs on this thread */
        return dn_fail(DN_ERR_INTERNAL, "CUDA allocation of %s for another network than the running one", what);
    dn_cuda_free_array(a);
    dn_tensor t;
    DN_TRY(alloc(&t, n, what));
    a->data = t.data;
    a->n = t.n;
    return DN_OK;
}

dn_status dn_cuda_put(dn_cuda_net *s, dn_cuda_array *a, const float *src, size_t n, const char *what)
{
    if (!src) {
        dn_cuda_free_array(a);
        return DN_OK;
    }
    DN_TRY(dn_cuda_ensure(s, a, n, what));
    dn_tensor t = {a->data, n, &backends[s->ordinal]};
    return upload(&t, 0, src, n);
}

dn_status dn_cuda_get(dn_cuda_net *s, float *dst, const dn_cuda_array *a)
{
    if (!dst || !a->data) return DN_OK;
    dn_tensor t = {a->data, a->n, &backends[s->ordinal]};
    return download(dst, &t, 0, a->n);
}

void dn_cuda_free_array(dn_cuda_array *a)
{
    if (a->data) cudaFree(a->data);
    *a = (dn_cuda_array){0};
}

dn_cuda_params *dn_cuda_layer_params(dn_cuda_net *s, int index)
{
    if (index >= s->n_params) {
        dn_cuda_params *grown = realloc(s->params, sizeof *grown * (index + 1));
        if (!grown) return NULL;
        memset(grown + s->n_params, 0, sizeof *grown * (index + 1 - s->n_params));
        s->params = grown;
        s->n_params = index + 1;
    }
    return &s->params[index];
}

dn_status dn_cuda_prepared(const dn_cuda_net *s, const dn_layer *l, dn_cuda_params **out)
{
    *out = l->index < s->n_params ? &s->params[l->index] : NULL;
    if (!*out || !(*out)->weights.data)
        return dn_fail(DN_ERR_INTERNAL, "layer %d [%s] ran before its weights were on the GPU", l->index,
                       l->ops->name);
    return DN_OK;
}

dn_status dn_cuda_host_scratch(dn_cuda_net *s, size_t n, float **out)
{
    if (s->host_n < n) {
        float *grown = realloc(s->host, sizeof(float) * n);
        if (!grown) return dn_fail(DN_ERR_OOM, "out of host memory for %zu MiB of loss scratch", (n * 4) >> 20);
        s->host = grown;
        s->host_n = n;
    }
    *out = s->host;
    return DN_OK;
}

dn_status dn_cuda_read_sum(dn_cuda_net *s, double *out)
{
    DN_CUDA_TRY(cudaMemcpyAsync(out, s->sum, sizeof *out, cudaMemcpyDeviceToHost, s->stream), "reading a loss");
    DN_CUDA_TRY(cudaStreamSynchronize(s->stream), "running the network");
    return DN_OK;
}

/* ---- per-network state ------------------------------------------------------- */

static void begin(const dn_ctx *ctx)
{
    dn_cpu_set_threads(ctx->threads);
    if (!ctx->device) return;
    current = ctx->device;
    cudaSetDevice(current->ordinal);
}

static void close_net(dn_ctx *ctx)
{
    dn_cuda_net *s = ctx->device;
    if (!s) return;
    cudaSetDevice(s->ordinal);
    if (s->stream) cudaStreamSynchronize(s->stream);
    for (int i = 0; i < s->n_params; i++) {
        for (size_t k = 0; k < sizeof s->params[i].all / sizeof *s->params[i].all; k++)
            dn_cuda_free_array(&s->params[i].all[k]);
        dn_cuda_dnn_free(s->params[i].dnn);
    }
    free(s->params);
    free(s->host);
    dn_cuda_free_array(&s->dnn_ws);
    if (s->sum) cudaFree(s->sum);
    dn_cuda_dnn_destroy(s->dnn);
    dn_cuda_nccl_destroy(s->nccl);
    dn_cuda_blas_destroy(s->blas);
    if (s->staging) cudaFreeHost(s->staging);
    if (s->staged) cudaEventDestroy(s->staged);
    if (s->stream) cudaStreamDestroy(s->stream);
    if (current == s) current = NULL;
    free(s);
    ctx->device = NULL;
}

static dn_status open_net(dn_ctx *ctx)
{
    dn_cuda_net *s = calloc(1, sizeof *s);
    if (!s) return dn_fail(DN_ERR_OOM, "out of memory");
    s->ordinal = (int)(ctx->backend - backends);
    ctx->device = s;
    current = s;
    DN_CUDA_TRY(cudaSetDevice(s->ordinal), "to select the GPU");
    DN_CUDA_TRY(cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking), "to create a stream");
    DN_CUDA_TRY(cudaEventCreateWithFlags(&s->staged, cudaEventDisableTiming), "to create an event");
    DN_CUDA_TRY(cudaMalloc((void **)&s->sum, sizeof *s->sum), "to allocate device memory");
    DN_TRY(dn_cuda_blas_create(&s->blas, s->stream));
    return dn_cuda_dnn_create(&s->dnn, s->stream);
}

/* ---- devices ------------------------------------------------------------------- */

static const dn_backend template = {
    .alloc = alloc,
    .release = release,
    .upload = upload,
    .download = download,
    .begin = begin,
    .open = open_net,
    .close = close_net,
    .zero = zero,
    .device_copies = 1,
    .allreduce = dn_cuda_allreduce,
    .kernels = {
        [DN_KIND_convolutional] = &dn_cuda_kernels_convolutional,
        [DN_KIND_maxpool] = &dn_cuda_kernels_maxpool,
        [DN_KIND_avgpool] = &dn_cuda_kernels_avgpool,
        [DN_KIND_softmax] = &dn_cuda_kernels_softmax,
        [DN_KIND_cost] = &dn_cuda_kernels_cost,
        [DN_KIND_dropout] = &dn_cuda_kernels_dropout,
        [DN_KIND_route] = &dn_cuda_kernels_route,
        [DN_KIND_shortcut] = &dn_cuda_kernels_shortcut,
        [DN_KIND_upsample] = &dn_cuda_kernels_upsample,
        [DN_KIND_activation] = &dn_cuda_kernels_activation,
        [DN_KIND_empty] = &dn_cuda_kernels_empty,
        [DN_KIND_yolo] = &dn_cuda_kernels_yolo,
    },
};

static void count_devices(void)
{
    count_error = cudaGetDeviceCount(&n_devices);
    if (count_error != cudaSuccess) n_devices = 0;
    if (n_devices > MAX_DEVICES) n_devices = MAX_DEVICES;
    for (int i = 0; i < n_devices; i++) {
        backends[i] = template;
        snprintf(names[i], sizeof names[i], "cuda:%d", i);
        backends[i].name = names[i];
    }
}

dn_status dn_cuda_device_count(int *count)
{
    pthread_once(&once, count_devices);
    *count = n_devices;
    if (count_error != cudaSuccess) return unavailable(count_error);
    return DN_OK;
}

static dn_status check_ordinal(int ordinal)
{
    int count;
    DN_TRY(dn_cuda_device_count(&count));
    if (count == 0) return dn_fail(DN_ERR_DEVICE, "the NVIDIA driver found no CUDA GPU");
    if (ordinal < 0 || ordinal >= count)
        return dn_fail(DN_ERR_DEVICE, "cuda:%d does not exist: this machine has %d CUDA device%s (cuda:0 to "
                       "cuda:%d)", ordinal, count, count == 1 ? "" : "s", count - 1);
    return DN_OK;
}

dn_status dn_cuda_backend(int ordinal, const dn_backend **out)
{
    *out = NULL;
    DN_TRY(check_ordinal(ordinal));
    *out = &backends[ordinal];
    return DN_OK;
}

const char *dn_cuda_library_error(const char *name)
{
    if (strcmp(name, "cublas") == 0) return dn_cuda_blas_error();
    if (strcmp(name, "cudnn") == 0) return dn_cuda_dnn_error();
    if (strcmp(name, "nccl") == 0) return dn_cuda_nccl_error();
    return "unknown library: ask for \"cublas\", \"cudnn\" or \"nccl\"";
}

dn_status dn_cuda_memory_info(int ordinal, size_t *free_bytes, size_t *total_bytes)
{
    *free_bytes = *total_bytes = 0;
    DN_TRY(check_ordinal(ordinal));
    int previous = 0;
    DN_CUDA_TRY(cudaGetDevice(&previous), "to read the current GPU");
    DN_CUDA_TRY(cudaSetDevice(ordinal), "to select the GPU");
    cudaError_t err = cudaMemGetInfo(free_bytes, total_bytes);
    cudaSetDevice(previous);
    DN_CUDA_TRY(err, "to read the GPU's memory");
    return DN_OK;
}
