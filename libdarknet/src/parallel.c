/* Data-parallel training over several networks of one cfg, one per device: each runs its
   share of the iteration's forward and backward passes in its own thread, the update
   accumulators are summed across them (the backend's all-reduce, e.g. NCCL, or on the host),
   then each applies the same update. Only network 0 keeps momentum between iterations (the
   others apply theirs with momentum 0, which empties their accumulators), so the sum adds
   each network's new gradients to one copy of the momentum. */
#include <pthread.h>
#include <string.h>

#include "dn.h"

typedef struct worker {
    dn_network *net;
    const float *x, *y;
    int truth_size;
    double total;
    dn_status st;
    char error[1024]; /* dn_last_error is per thread */
} worker;

static void *run_worker(void *arg)
{
    worker *w = arg;
    w->net->ctx.backend->begin(&w->net->ctx); /* this thread's device and CPU threads */
    w->st = dn_network_accumulate(w->net, w->x, w->y, w->truth_size, &w->total);
    if (w->st != DN_OK) snprintf(w->error, sizeof w->error, "%s", dn_last_error());
    return NULL;
}

static const char *const names[] = {"weights", "biases", "scales"};

/* The host all-reduce: network 0's accumulators += the others', copied back to each. */
static void host_allreduce(dn_network *const *nets, int n)
{
    for (int i = 0; i < nets[0]->n; i++)
        for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
            dn_layer *l0 = &nets[0]->layers[i];
            float *sum = NULL;
            size_t count = 0;
            if (!l0->ops->param || !l0->ops->param(l0, names[k], &sum, &count) || !sum) continue;
            for (int pass = 0; pass < 2; pass++) /* add them all, then copy the sum back */
                for (int j = 1; j < n; j++) {
                    dn_layer *l = &nets[j]->layers[i];
                    float *acc = NULL;
                    size_t c = 0;
                    l->ops->param(l, names[k], &acc, &c);
                    for (size_t e = 0; e < count && pass == 0; e++) sum[e] += acc[e];
                    if (pass == 1) memcpy(acc, sum, sizeof(float) * count);
                }
        }
}

/* The networks can train together: one backend kind, equal shapes, distinct GPUs. */
static dn_status check_set(dn_network *const *nets, int n)
{
    if (n < 1) return dn_fail(DN_ERR_SHAPE, "data-parallel training needs at least one network");
    const dn_net_info *a = &nets[0]->info;
    for (int j = 1; j < n; j++) {
        const dn_net_info *b = &nets[j]->info;
        if (nets[j]->ctx.backend->allreduce != nets[0]->ctx.backend->allreduce ||
            nets[j]->ctx.backend->device_copies != nets[0]->ctx.backend->device_copies)
            return dn_fail(DN_ERR_UNSUPPORTED, "data-parallel training needs the networks on one kind of device; "
                           "network %d is on %s, network 0 on %s", j, nets[j]->ctx.backend->name,
                           nets[0]->ctx.backend->name);
        for (int i = 0; i < j; i++)
            if (nets[j]->ctx.device && nets[j]->ctx.backend == nets[i]->ctx.backend)
                return dn_fail(DN_ERR_UNSUPPORTED, "networks %d and %d are both on %s: give each network its own "
                               "GPU", i, j, nets[i]->ctx.backend->name);
        if (nets[j]->n != nets[0]->n || b->batch != a->batch || b->subdivisions != a->subdivisions ||
            b->inputs != a->inputs || b->truths != a->truths)
            return dn_fail(DN_ERR_SHAPE, "network %d was not built like network 0 (%s): data-parallel training "
                           "needs the same cfg, batch and input size on every device", j, nets[0]->cfg_path);
    }
    if (nets[0]->ctx.backend->device_copies && !nets[0]->ctx.backend->allreduce && n > 1)
        return dn_fail(DN_ERR_UNSUPPORTED, "the %s backend cannot train in parallel", nets[0]->ctx.backend->name);
    return DN_OK;
}

dn_status dn_network_train_step_parallel(dn_network *const *nets, int n, const float *x, const float *y,
                                         int truth_size, float *loss)
{
    DN_TRY(check_set(nets, n));
    const dn_net_info *in = &nets[0]->info;
    const size_t m = (size_t)in->batch * in->subdivisions;
    worker *w = calloc(n, sizeof *w);
    pthread_t *threads = calloc(n, sizeof *threads);
    dn_status st = w && threads ? DN_OK : dn_fail(DN_ERR_OOM, "out of memory");
    for (int j = 0; j < n && st == DN_OK; j++) {
        st = dn_network_begin_step(nets[j], truth_size);
        w[j] = (worker){nets[j], x + j * m * in->inputs, y + j * m * truth_size, truth_size, 0, DN_OK, ""};
    }
    int started = 0;
    for (; st == DN_OK && started < n; started++)
        if (pthread_create(&threads[started], NULL, run_worker, &w[started]) != 0)
            st = dn_fail(DN_ERR_INTERNAL, "cannot start a training thread");
    for (int j = 0; j < started; j++) pthread_join(threads[j], NULL);
    double total = 0;
    for (int j = 0; j < started && st == DN_OK; j++) {
        if (w[j].st != DN_OK) st = dn_fail(w[j].st, "%s", w[j].error);
        total += w[j].total;
    }
    if (st == DN_OK && n > 1) {
        nets[0]->ctx.backend->begin(&nets[0]->ctx);
        if (nets[0]->ctx.backend->allreduce) {
            dn_ctx **ctxs = malloc(sizeof *ctxs * n);
            if (!ctxs) st = dn_fail(DN_ERR_OOM, "out of memory");
            for (int j = 0; ctxs && j < n; j++) ctxs[j] = &nets[j]->ctx;
            if (ctxs) st = nets[0]->ctx.backend->allreduce(ctxs, n);
            free(ctxs);
        } else {
            host_allreduce(nets, n);
        }
    }
    for (int j = 0; j < n && st == DN_OK; j++) {
        nets[j]->ctx.backend->begin(&nets[j]->ctx);
        st = dn_network_apply_update(nets[j], (int)(n * m), j == 0 ? nets[j]->info.momentum : 0.f);
    }
    free(w);
    free(threads);
    if (st == DN_OK) *loss = (float)(total / (n * m));
    return st;
}
