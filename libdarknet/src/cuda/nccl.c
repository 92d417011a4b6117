/* Data-parallel training's all-reduce over GPUs with NCCL, opened with dlopen on first use
   (the nvidia-nccl-cu13 wheel): the update accumulators of every network are summed in place,
   on each network's stream, in one NCCL group. Communicators are made for a set of networks
   the first time it trains together (ncclCommInitAll, one rank per GPU). */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#include "cuda.h"

/* The part of NCCL 2's C ABI used here (nccl.h): communicators are pointers, results ints. */
typedef int (*init_all_fn)(void **comms, int n, const int *devices);
typedef int (*destroy_fn)(void *comm);
typedef int (*all_reduce_fn)(const void *send, void *recv, size_t count, int type, int op, void *comm,
                             cudaStream_t stream);
typedef int (*group_fn)(void);
typedef const char *(*error_string_fn)(int result);

static struct {
    init_all_fn init_all;
    destroy_fn destroy;
    all_reduce_fn all_reduce;
    group_fn group_start, group_end;
    error_string_fn error_string;
    char error[512];
} nccl;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void)
{
    void *h = dlopen("libnccl.so.2", RTLD_NOW | RTLD_GLOBAL);
    if (!h) {
        snprintf(nccl.error, sizeof nccl.error, "training on several GPUs needs NCCL (libnccl.so.2), which was not "
                 "found: pip install nvidia-nccl-cu13 [%s]", dlerror());
        return;
    }
    *(void **)&nccl.init_all = dlsym(h, "ncclCommInitAll");
    *(void **)&nccl.destroy = dlsym(h, "ncclCommDestroy");
    *(void **)&nccl.all_reduce = dlsym(h, "ncclAllReduce");
    *(void **)&nccl.group_start = dlsym(h, "ncclGroupStart");
    *(void **)&nccl.group_end = dlsym(h, "ncclGroupEnd");
    *(void **)&nccl.error_string = dlsym(h, "ncclGetErrorString");
    if (!nccl.destroy || !nccl.all_reduce || !nccl.group_start || !nccl.group_end || !nccl.error_string) {
        snprintf(nccl.error, sizeof nccl.error, "libnccl.so.2 lacks the functions darknetpy uses: install NCCL 2 "
                 "with pip install nvidia-nccl-cu13");
        nccl.init_all = NULL;
    }
}

const char *dn_cuda_nccl_error(void)
{
    pthread_once(&once, load);
    return nccl.init_all ? NULL : nccl.error;
}

static dn_status nccl_fail(int result, const char *what)
{
    return dn_fail(DN_ERR_DEVICE, "NCCL failed %s: %s (ncclResult_t %d)", what, nccl.error_string(result), result);
}

void dn_cuda_nccl_destroy(void *comm)
{
    if (comm) nccl.destroy(comm);
}

/* Communicators for this set of networks, made unless they already belong to it. */
static dn_status communicators(dn_cuda_net *const *s, int n)
{
    int ready = 1;
    for (int j = 0; j < n; j++) ready &= s[j]->nccl && s[j]->nccl_root == s[0] && s[j]->nccl_n == n;
    if (ready) return DN_OK;
    void **comms = calloc(n, sizeof *comms);
    int *devices = calloc(n, sizeof *devices);
    dn_status st = comms && devices ? DN_OK : dn_fail(DN_ERR_OOM, "out of memory");
    for (int j = 0; j < n && st == DN_OK; j++) {
        dn_cuda_nccl_destroy(s[j]->nccl);
        s[j]->nccl = NULL;
        devices[j] = s[j]->ordinal;
    }
    const int r = st == DN_OK ? nccl.init_all(comms, n, devices) : DN_NCCL_SUCCESS;
    if (r != DN_NCCL_SUCCESS) st = nccl_fail(r, "to connect the GPUs");
    for (int j = 0; j < n && st == DN_OK; j++) {
        s[j]->nccl = comms[j];
        s[j]->nccl_root = s[0];
        s[j]->nccl_n = n;
    }
    free(comms);
    free(devices);
    return st;
}

/* The k-th update accumulator of a layer (k < 3). */
static dn_cuda_array *accumulator(dn_cuda_params *p, int k)
{
    return k == 0 ? &p->weight_updates : k == 1 ? &p->bias_updates : &p->scale_updates;
}

dn_status dn_cuda_allreduce(dn_ctx *const *ctxs, int n)
{
    const char *why = dn_cuda_nccl_error();
    if (why) return dn_fail(DN_ERR_DEVICE, "%s", why);
    dn_cuda_net **s = malloc(sizeof *s * n);
    if (!s) return dn_fail(DN_ERR_OOM, "out of memory");
    for (int j = 0; j < n; j++) s[j] = dn_cuda_of(ctxs[j]);
    dn_status st = communicators(s, n);
    for (int j = 1; j < n && st == DN_OK; j++)
        if (s[j]->n_params != s[0]->n_params)
            st = dn_fail(DN_ERR_INTERNAL, "the networks' device parameters differ (%d and %d layers)", s[0]->n_params,
                         s[j]->n_params);
    int r = st == DN_OK ? nccl.group_start() : DN_NCCL_SUCCESS;
    for (int i = 0; i < s[0]->n_params && st == DN_OK && r == DN_NCCL_SUCCESS; i++) {
        for (int k = 0; k < 3 && r == DN_NCCL_SUCCESS; k++) {
            if (!accumulator(&s[0]->params[i], k)->data) continue;
            for (int j = 0; j < n && r == DN_NCCL_SUCCESS; j++) {
                dn_cuda_array *a = accumulator(&s[j]->params[i], k);
                r = nccl.all_reduce(a->data, a->data, a->n, DN_NCCL_FLOAT32, DN_NCCL_SUM, s[j]->nccl, s[j]->stream);
            }
        }
    }
    if (st == DN_OK) {
        const int end = nccl.group_end(); /* closes the group even after a failed call */
        if (r == DN_NCCL_SUCCESS) r = end;
        if (r != DN_NCCL_SUCCESS) st = nccl_fail(r, "summing the gradients");
    }
    free(s);
    return st;
}
