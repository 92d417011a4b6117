/* The network: build, free, prepare, resize, forward, backward, update and the
   learning-rate schedule. Generic code walks the layer graph, hands each layer's
   input tensors to its backend's kernels and never branches on a type. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "dn.h"

/* outputs_in_arena: the outputs are views of the network's arena */
static void free_layers(dn_layer *layers, int n, const dn_backend *b, int outputs_in_arena)
{
    for (int i = 0; i < n; i++) {
        dn_layer *l = &layers[i];
        if (!l->ops) break;
        if (l->ops->free) l->ops->free(l);
        free(l->p);
        free(l->in_idx);
        free(l->in);
        free(l->in_delta);
        if (!l->ops->in_place) {
            if (!outputs_in_arena) b->release(&l->output);
            b->release(&l->delta);
        }
    }
    free(layers);
}

void dn_network_free(dn_network *net)
{
    if (!net) return;
    const dn_backend *b = net->ctx.backend;
    b->begin(&net->ctx);
    free_layers(net->layers, net->n, b, net->arena.data != NULL);
    b->release(&net->arena);
    free(net->keep);
    free(net->layer_s);
    b->release(&net->input);
    b->release(&net->input_delta);
    b->release(&net->ctx.truth);
    b->release(&net->ctx.workspace);
    if (b->close) b->close(&net->ctx);
    dn_cfg_free(net->cfg);
    free(net->cfg_path);
    free(net);
}

/* Zero n floats of t from offset, in whatever memory the backend keeps it. */
static dn_status zero(const dn_backend *b, dn_tensor *t, size_t offset, size_t n)
{
    if (b->zero) return b->zero(t, offset, n);
    memset(t->data + offset, 0, sizeof(float) * n);
    return DN_OK;
}

int dn_network_output_layer(const dn_network *net)
{
    int i = net->n - 1;
    while (i > 0 && net->layers[i].kind == DN_KIND_cost) i--;
    return i;
}

/* Point each layer at its input tensors and check the backend runs every kind. */
static dn_status link_layers(dn_network *net)
{
    const dn_backend *b = net->ctx.backend;
    for (int i = 0; i < net->n; i++) {
        dn_layer *l = &net->layers[i];
        if (!b->kernels[l->kind] || !b->kernels[l->kind]->forward)
            return dn_fail(DN_ERR_UNSUPPORTED, "%s: layer %d [%s] is not supported on the %s backend", net->cfg_path,
                           i, l->ops->name, b->name);
        const char *why = b->kernels[l->kind]->unsupported ? b->kernels[l->kind]->unsupported(l) : NULL;
        if (why)
            return dn_fail(DN_ERR_UNSUPPORTED, "%s: layer %d [%s] %s is not supported on the %s backend",
                           net->cfg_path, i, l->ops->name, why, b->name);
        if (!l->in) l->in = calloc(l->n_in, sizeof *l->in);
        if (!l->in_delta) l->in_delta = calloc(l->n_in, sizeof *l->in_delta);
        if (!l->in || !l->in_delta) return dn_fail(DN_ERR_OOM, "out of memory building %s", net->cfg_path);
        for (int k = 0; k < l->n_in; k++) {
            const int src = l->in_idx[k];
            l->in[k] = src < 0 ? &net->input : &net->layers[src].output;
            l->in_delta[k] = src < 0 ? &net->input_delta : &net->layers[src].delta;
        }
    }
    return DN_OK;
}

/* Bytes of layer outputs, deltas and the input: the part that grows with the batch. */
static size_t activation_bytes(const dn_network *net)
{
    size_t n = net->input.n + net->input_delta.n + net->ctx.truth.n + net->arena.n;
    for (int i = 0; i < net->n; i++) { /* outputs in the arena are views, counted with it */
        const dn_layer *l = &net->layers[i];
        if (!l->ops->in_place) n += (net->arena.data ? 0 : l->output.n) + l->delta.n;
    }
    return n * sizeof(float);
}

/* Bytes that grow with the batch, per image: the input (and training's truth and deltas), and
   the outputs held for every image: all of them, or, image by image, the kept ones. */
static size_t bytes_per_image(const dn_network *net)
{
    const int by_image = net->arena.data && dn_plan_image_by_image(net);
    size_t n = net->input.n + net->input_delta.n + net->ctx.truth.n + (by_image ? 0 : net->arena.n);
    for (int i = 0; i < net->n; i++) {
        const dn_layer *l = &net->layers[i];
        if (l->ops->in_place) continue;
        if (!net->arena.data || (by_image && l->output_kept)) n += l->output.n;
        n += l->delta.n;
    }
    return n / net->info.batch * sizeof(float);
}

/* The most the network may hold: max_memory, or what the machine can still give (0: no limit known). */
static size_t memory_limit(const dn_network *net)
{
    if (net->ctx.device) return net->max_memory; /* a device allocates at once and says when it is full */
    const size_t avail = dn_available_memory();
    return net->max_memory && (!avail || net->max_memory < avail) ? net->max_memory : avail;
}

static const char *limit_name(const dn_network *net, size_t limit, char *buf, size_t n)
{
    if (net->max_memory == limit) snprintf(buf, n, "max_memory=%zu MiB", limit >> 20);
    else snprintf(buf, n, "the %zu MiB of memory available", limit >> 20);
    return buf;
}

/* Memory is reserved lazily (pages are touched on first use), so a network too large
   for the machine would build and then be killed on its first pass: refuse it now,
   naming the batch that fits. */
static dn_status check_memory(const dn_network *net, size_t limit)
{
    if (!limit || net->bytes <= limit) return DN_OK;
    char what[64];
    const size_t per = bytes_per_image(net), fixed = net->bytes - per * net->info.batch;
    const long fits = limit > fixed && per ? (long)((limit - fixed) / per) : 0;
    if (fits < 1)
        return dn_fail(DN_ERR_OOM, "%s: the weights alone need %zu MiB, more than %s: use a smaller model or input "
                       "size", net->cfg_path, fixed >> 20, limit_name(net, limit, what, sizeof what));
    return dn_fail(DN_ERR_OOM, "%s: the network with batch %d needs %zu MiB, more than %s; a batch of %ld fits (lower "
                   "batch or raise subdivisions)", net->cfg_path, net->info.batch, net->bytes >> 20,
                   limit_name(net, limit, what, sizeof what), fits);
}

/* Build the layers of net->cfg for an input of width x height (0: the cfg's). Allocations
   stop at the memory limit, before a too-large network touches (initialises) anything. */
static dn_status build(dn_network *net, int batch, int width, int height)
{
    dn_network_seed(net, 0); /* before parsing: layers draw their initial weights */
    net->ctx.backend->begin(&net->ctx); /* a device backend allocates on this network's device */
    const size_t limit = memory_limit(net);
    char what[64];
    if (batch <= 0 && limit) /* training: refuse what will not fit before allocating it */
        DN_TRY(dn_check_training_memory(net->cfg, width, height, limit, limit_name(net, limit, what, sizeof what)));
    /* a hard stop at 4x the limit: far enough to name the batch that fits (check_memory), near
       enough that a network with absurd weights is refused before they are initialised */
    dn_alloc_tally(&net->bytes, limit && limit < SIZE_MAX / 4 ? 4 * limit : 0);
    dn_status st = dn_network_parse(net->cfg, batch, width, height, net);
    const dn_backend *b = net->ctx.backend;
    if (st == DN_OK) st = b->alloc(&net->input, (size_t)net->info.batch * net->info.inputs, "the input");
    if (st == DN_OK && !net->info.train) st = dn_plan_outputs(net);
    const int refused = st == DN_ERR_OOM && dn_alloc_over_budget();
    dn_alloc_tally(NULL, 0);
    if (refused)
        return dn_fail(DN_ERR_OOM, "%s: the network with batch %d needs far more than %s; lower batch (or raise "
                       "subdivisions) or the input size", net->cfg_path, net->info.batch,
                       limit_name(net, limit, what, sizeof what));
    DN_TRY(st);
    DN_TRY(check_memory(net, limit));
    DN_TRY(link_layers(net));
    net->info.n_layers = net->n;
    net->info.output_layer = dn_network_output_layer(net);
    net->info.outputs = net->layers[net->info.output_layer].outputs;
    int truths = 0; /* the most any layer reads (detection heads); else one value per output */
    for (int i = 0; i < net->n; i++)
        if (net->layers[i].truths > truths) truths = net->layers[i].truths;
    net->info.truths = truths ? truths : net->info.outputs;
    return DN_OK;
}

dn_status dn_network_load(const char *cfg_path, const dn_load_options *options, dn_network **out)
{
    *out = NULL;
    const dn_backend *b;
    DN_TRY(dn_backend_find(options->device ? options->device : "cpu", &b));
    dn_network *net = calloc(1, sizeof *net);
    if (!net) return dn_fail(DN_ERR_OOM, "out of memory loading %s", cfg_path);
    net->ctx.backend = b;
    net->max_memory = options->max_memory;
    net->keep_all = options->keep_outputs;
    dn_status st = b->open ? b->open(&net->ctx) : DN_OK;
    if (st == DN_OK) st = dn_cfg_read(cfg_path, &net->cfg);
    if (st == DN_OK && !(net->cfg_path = strdup(cfg_path))) st = dn_fail(DN_ERR_OOM, "out of memory");
    if (st == DN_OK) st = build(net, options->batch, 0, 0);
    if (st != DN_OK) {
        dn_network_free(net);
        return st;
    }
    *out = net;
    return DN_OK;
}

dn_status dn_network_load_cfg(const char *cfg_path, int batch, dn_network **out)
{
    const dn_load_options options = {.batch = batch};
    return dn_network_load(cfg_path, &options, out);
}

const char *dn_network_backend(const dn_network *net) { return net->ctx.backend->name; }

dn_status dn_network_set_threads(dn_network *net, int threads)
{
    if (threads > 1024) return dn_fail(DN_ERR_SHAPE, "threads=%d is more than 1024", threads);
    net->ctx.threads = threads;
    return DN_OK;
}

void dn_network_set_cancel(dn_network *net, volatile int *flag) { net->ctx.cancel = flag; }

void dn_network_seed(dn_network *net, uint64_t seed) { net->ctx.rng.s = seed ? seed : 0x9E3779B97F4A7C15ULL; }

dn_status dn_network_info(const dn_network *net, dn_net_info *info)
{
    *info = net->info;
    info->fused = net->want_prepared; /* prepared again at the next pass after any weight change */
    return DN_OK;
}

dn_status dn_network_layer_info(const dn_network *net, int index, dn_layer_info *info)
{
    if (index < 0 || index >= net->n)
        return dn_fail(DN_ERR_SHAPE, "layer index %d out of range: the network has %d layers", index, net->n);
    const dn_layer *l = &net->layers[index];
    memset(info, 0, sizeof *info);
    info->index = index;
    info->type = l->ops->name;
    info->kind = l->kind;
    info->caps = dn_layer_caps(l->kind);
    info->n_inputs = l->n_in;
    info->input_layers = l->in_idx;
    info->in_c = l->c;
    info->in_h = l->h;
    info->in_w = l->w;
    info->inputs = l->inputs;
    info->out_c = l->out_c;
    info->out_h = l->out_h;
    info->out_w = l->out_w;
    info->outputs = l->outputs;
    info->batch_normalize = l->batch_normalize;
    info->n_weights = l->ops->n_weights ? (int)l->ops->n_weights(l) : 0;
    info->bflops = l->bflops;
    l->ops->describe(l, info->summary, sizeof info->summary);
    return DN_OK;
}

dn_status dn_network_layer_output(const dn_network *net, int index, const float **data, int *count)
{
    if (index < 0 || index >= net->n)
        return dn_fail(DN_ERR_SHAPE, "layer index %d out of range: the network has %d layers", index, net->n);
    if (!net->layers[index].output_kept)
        return dn_fail(DN_ERR_SHAPE, "layer %d's output is not kept: an inference network reuses the memory of an "
                       "output once the layers that read it have run; build the network with keep_outputs=True "
                       "or call keep_output(%d) (dn_network_keep_output) before the forward", index, index);
    *data = net->layers[index].output.data;
    *count = net->layers[index].batch * net->layers[index].outputs;
    return DN_OK;
}

dn_status dn_network_keep_output(dn_network *net, int index)
{
    if (index < -1 || index >= net->n)
        return dn_fail(DN_ERR_SHAPE, "layer index %d out of range: the network has %d layers", index, net->n);
    if (net->info.train) return DN_OK; /* training keeps every output */
    if (index == -1) net->keep_all = 1;
    else if (net->layers[index].output_kept) return DN_OK;
    else if (!net->keep && !(net->keep = calloc(net->n, 1))) return dn_fail(DN_ERR_OOM, "out of memory");
    else net->keep[index] = 1;
    net->ctx.backend->begin(&net->ctx);
    net->bytes -= net->arena.n * sizeof(float);
    dn_alloc_tally(&net->bytes, 0);
    const dn_status st = dn_plan_outputs(net);
    dn_alloc_tally(NULL, 0);
    return st;
}

/* The first n of `count` values of layer `index`'s tensor t (its `what`) into dst, from any device. */
static dn_status copy_out(const dn_network *net, int index, const dn_tensor *t, int count, const char *what,
                          float *dst, size_t n)
{
    if (n > (size_t)count)
        return dn_fail(DN_ERR_SHAPE, "layer %d has %d %s values, %zu were asked for", index, count, what, n);
    net->ctx.backend->begin(&net->ctx);
    return n ? net->ctx.backend->download(dst, t, 0, n) : DN_OK;
}

dn_status dn_network_layer_output_copy(const dn_network *net, int index, float *dst, size_t n)
{
    const float *data;
    int count;
    DN_TRY(dn_network_layer_output(net, index, &data, &count));
    return copy_out(net, index, &net->layers[index].output, count, "output", dst, n);
}

dn_status dn_network_layer_delta(const dn_network *net, int index, const float **data, int *count)
{
    if (index < 0 || index >= net->n)
        return dn_fail(DN_ERR_SHAPE, "layer index %d out of range: the network has %d layers", index, net->n);
    *data = net->layers[index].delta.data;
    *count = *data ? net->layers[index].batch * net->layers[index].outputs : 0;
    return DN_OK;
}

dn_status dn_network_layer_delta_copy(const dn_network *net, int index, float *dst, size_t n)
{
    const float *data;
    int count;
    DN_TRY(dn_network_layer_delta(net, index, &data, &count));
    return copy_out(net, index, &net->layers[index].delta, count, "delta", dst, n);
}

dn_status dn_network_detection_stats(const dn_network *net, int index, dn_detection_stats *out)
{
    if (index < 0 || index >= net->n || !net->layers[index].stats)
        return dn_fail(DN_ERR_SHAPE, "layer %d is not a detection layer: only [yolo] layers have training statistics",
                       index);
    *out = *net->layers[index].stats;
    return DN_OK;
}

dn_status dn_network_set_counters(dn_network *net, uint64_t seen, int cur_iteration)
{
    net->info.seen = seen;
    net->info.cur_iteration = cur_iteration;
    return DN_OK;
}

static dn_status prepare_layers(dn_network *net)
{
    net->ctx.backend->begin(&net->ctx); /* a device's prepare uploads to this network's device */
    dn_alloc_tally(&net->bytes, 0);
    for (int i = 0; i < net->n; i++) {
        dn_layer *l = &net->layers[i];
        const dn_kernels *k = net->ctx.backend->kernels[l->kind];
        dn_status st = k->prepare ? k->prepare(l, &net->ctx) : DN_OK;
        if (st != DN_OK) {
            dn_alloc_tally(NULL, 0);
            return st;
        }
    }
    dn_alloc_tally(NULL, 0);
    net->ctx.prepared = 1;
    net->info.fused = 1;
    return DN_OK;
}

dn_status dn_network_prepare(dn_network *net)
{
    net->want_prepared = !net->info.train; /* a training network runs on its raw weights */
    return net->want_prepared ? prepare_layers(net) : DN_OK;
}

/* The prepared copies no longer match the raw weights. */
void dn_network_unprepare(dn_network *net)
{
    net->ctx.prepared = 0;
    net->ctx.device_newer = 0;
    net->info.fused = 0;
}

dn_status dn_network_sync_host(const dn_network *net)
{
    if (!net->ctx.device_newer) return DN_OK;
    net->ctx.backend->begin(&net->ctx);
    dn_alloc_tally((size_t *)&net->bytes, 0); /* host arrays a pull restores count as the network's */
    dn_status st = DN_OK;
    for (int i = 0; i < net->n && st == DN_OK; i++) {
        const dn_layer *l = &net->layers[i];
        const dn_kernels *k = net->ctx.backend->kernels[l->kind];
        if (k->pull) st = k->pull(l, &net->ctx);
    }
    dn_alloc_tally(NULL, 0);
    return st;
}

/* This call changes the parameters: prepared inference copies go stale; a device's copies,
   made current first, become the newer ones. */
static dn_status params_will_change(dn_network *net)
{
    if (!net->ctx.backend->device_copies) {
        dn_network_unprepare(net);
        return DN_OK;
    }
    if (!net->ctx.prepared) DN_TRY(prepare_layers(net));
    net->ctx.device_newer = 1;
    return DN_OK;
}

static dn_status check_cancel(const dn_network *net)
{
    if (net->ctx.cancel && *net->ctx.cancel) return dn_fail(DN_ERR_CANCELLED, "interrupted");
    return DN_OK;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* Layer l's forward; inference gives it its workspace, its place in the arena. Without one
   ctx->workspace is left alone: a training kernel may grow it during the call. */
static dn_status forward_layer(dn_ctx *ctx, dn_layer *l)
{
    if (!l->scratch.data) return ctx->backend->kernels[l->kind]->forward(l, l->in, &l->output, ctx);
    const dn_tensor own = ctx->workspace;
    ctx->workspace = l->scratch;
    const dn_status st = ctx->backend->kernels[l->kind]->forward(l, l->in, &l->output, ctx);
    ctx->workspace = own;
    return st;
}

static dn_status forward_layers(dn_network *net)
{
    dn_ctx *ctx = &net->ctx;
    for (int i = 0; i < net->n; i++) {
        dn_layer *l = &net->layers[i];
        DN_TRY(check_cancel(net));
        if (ctx->training && l->delta.data && !l->ops->in_place) DN_TRY(zero(ctx->backend, &l->delta, 0, l->delta.n));
        const double t0 = net->layer_s ? now_s() : 0;
        DN_TRY(forward_layer(ctx, l));
        if (net->layer_s) net->layer_s[i] += now_s() - t0;
    }
    return DN_OK;
}

/* Moves the view of every layer by `step` images; `batch` is the batch size the layers then
   see (1: one image). Kept outputs and the input hold every image: their view moves to the
   image's slice; the others hold one image, in a slot every image reuses (plan.c). In-place
   layers share their input's buffer. */
static void move_view(dn_network *net, long step, int batch)
{
    const int from = net->layers[0].batch;
    net->input.data += step * net->info.inputs;
    net->input.n = net->input.n / from * batch;
    for (int i = 0; i < net->n; i++) {
        dn_layer *l = &net->layers[i];
        if (l->ops->in_place) {
            l->output = net->layers[i - 1].output;
        } else if (l->output_kept) {
            l->output.data += step * l->outputs;
            l->output.n = l->output.n / from * batch;
        }
        l->batch = batch;
    }
}

/* The forward of the first `images` of the batch (image by image: only those; layer by layer:
   the whole batch, the rest of the input zero). */
static dn_status forward_all(dn_network *net, int images)
{
    if (net->layer_s) net->timed_forwards++;
    if (!dn_plan_image_by_image(net)) return forward_layers(net);
    dn_status st = DN_OK;
    int b = 0;
    move_view(net, 0, 1);
    for (; b < images && st == DN_OK; b++) {
        if (b) move_view(net, 1, 1);
        st = forward_layers(net);
    }
    move_view(net, -(b - 1), net->info.batch);
    return st;
}

dn_status dn_network_forward(dn_network *net, const float *input, int n)
{
    if (n < 1 || n > net->info.batch)
        return dn_fail(DN_ERR_SHAPE, "forward of %d samples on a network built for batch %d", n, net->info.batch);
    const dn_backend *b = net->ctx.backend;
    b->begin(&net->ctx);
    if ((net->want_prepared || b->device_copies) && !net->ctx.prepared) DN_TRY(prepare_layers(net));
    const size_t used = (size_t)n * net->info.inputs;
    net->ctx.training = 0;
    /* On the host, the layers read the caller's array where it holds all they read (the whole
       batch, or the images run one by one) with the alignment of our own buffer: no copy, and the
       buffer's pages stay untouched. Layers only read the network input (no in-place layer comes
       first, and routes never alias it). */
    if (!b->device_copies && (uintptr_t)input % 16 == 0 && (used == net->input.n || dn_plan_image_by_image(net))) {
        float *own = net->input.data;
        net->input.data = (float *)input;
        const dn_status st = forward_all(net, n);
        net->input.data = own;
        return st;
    }
    DN_TRY(b->upload(&net->input, 0, input, used));
    if (used < net->input.n) DN_TRY(zero(b, &net->input, used, net->input.n - used));
    return forward_all(net, n);
}

/* Learning rate for the current batch (spec §4.6). */
float dn_network_current_rate(const dn_network *net)
{
    const dn_net_info *in = &net->info;
    int b = (int)(in->seen / ((uint64_t)in->batch * in->subdivisions));
    float lr = in->learning_rate;
    if (b < in->burn_in) return lr * powf((float)b / in->burn_in, in->power);
    switch (net->policy) {
    case DN_POLICY_CONSTANT: return lr;
    case DN_POLICY_STEP: return lr * powf(net->scale, (float)(b / net->step));
    case DN_POLICY_STEPS:
        for (int i = 0; i < net->n_steps && net->steps[i] <= b; i++) lr *= net->scales[i];
        return lr;
    case DN_POLICY_EXP: return lr * powf(net->gamma, (float)b);
    case DN_POLICY_POLY: return lr * powf(1.f - (float)b / in->max_batches, in->power);
    case DN_POLICY_RANDOM: {
        /* a draw per batch, so the rate logged after an update is the one it used */
        dn_rng r = {0x9E3779B97F4A7C15ULL * (uint64_t)(b + 1)};
        return lr * powf(dn_rng_uniform(&r, 0, 1), in->power);
    }
    case DN_POLICY_SIGMOID: return lr / (1.f + expf(net->gamma * (b - net->step)));
    case DN_POLICY_SGDR: {
        /* parse guarantees mult >= 1; an inference cfg may leave the cycle at 0 (then 1).
           The loop runs at most ~31 times: cycles of constant length are skipped by division. */
        int64_t start = 0, len = net->sgdr_cycle > 0 ? net->sgdr_cycle : 1;
        if (net->sgdr_mult <= 1) {
            if (b > len) start = (b - 1) / len * len;
        } else {
            while (start + len < b) {
                start += len;
                len *= net->sgdr_mult;
            }
        }
        return net->learning_rate_min +
               .5f * (lr - net->learning_rate_min) * (1.f + cosf((b - start) * 3.14159265f / len));
    }
    }
    return lr;
}

static double network_cost(const dn_network *net)
{
    double sum = 0;
    int count = 0;
    for (int i = 0; i < net->n; i++)
        if (net->layers[i].has_cost) {
            sum += net->layers[i].cost;
            count++;
        }
    return count ? sum / count : 0;
}

static dn_status backward_all(dn_network *net)
{
    dn_ctx *ctx = &net->ctx;
    for (int i = net->n - 1; i >= 0; i--) {
        dn_layer *l = &net->layers[i];
        if (l->stopbackward) break;
        const dn_kernels *k = ctx->backend->kernels[l->kind];
        if (l->onlyforward || !k->backward) continue;
        DN_TRY(check_cancel(net));
        DN_TRY(k->backward(l, l->in, l->in_delta, ctx));
    }
    return DN_OK;
}

/* Allocate and release buffers after the build, keeping net->bytes what the network holds. */
static dn_status alloc_counted(dn_network *net, dn_tensor *t, size_t n, const char *what)
{
    dn_alloc_tally(&net->bytes, 0);
    const dn_status st = net->ctx.backend->alloc(t, n, what);
    dn_alloc_tally(NULL, 0);
    return st;
}

static void release_counted(dn_network *net, dn_tensor *t)
{
    net->bytes -= t->n * sizeof(float);
    net->ctx.backend->release(t);
}

/* Check that the network can train and size the truth buffer. */
static dn_status prepare_training(dn_network *net, int truth_size)
{
    const dn_net_info *in = &net->info;
    dn_ctx *ctx = &net->ctx;
    if (!in->train)
        return dn_fail(DN_ERR_UNSUPPORTED, "this network was built for inference; build it with batch=None (the "
                       "cfg's batch) to train");
    if (truth_size != in->truths)
        return dn_fail(DN_ERR_SHAPE, "truth vectors have %d values but the network takes %d", truth_size,
                       in->truths);
    if (!ctx->truth.data || ctx->truth_size != truth_size) {
        release_counted(net, &ctx->truth);
        ctx->truth_size = truth_size;
        DN_TRY(alloc_counted(net, &ctx->truth, (size_t)in->batch * truth_size, "truth vectors"));
    }
    ctx->backend->begin(ctx);
    return DN_OK;
}

void dn_network_phase_times(const dn_network *net, double seconds[3])
{
    memcpy(seconds, net->phase_s, sizeof net->phase_s);
}

dn_status dn_network_time_layers(dn_network *net, int on)
{
    free(net->layer_s);
    net->layer_s = NULL;
    net->timed_forwards = 0;
    if (!on) return DN_OK;
    if (net->ctx.backend != dn_cpu_backend())
        return dn_fail(DN_ERR_UNSUPPORTED, "%s: per-layer times are measured on the CPU backend only, not on %s",
                       net->cfg_path, net->ctx.backend->name);
    net->layer_s = calloc(net->n, sizeof *net->layer_s);
    return net->layer_s ? DN_OK : dn_fail(DN_ERR_OOM, "out of memory for the layer times of %s", net->cfg_path);
}

long dn_network_layer_times(const dn_network *net, double *seconds)
{
    for (int i = 0; i < net->n; i++) seconds[i] = net->layer_s ? net->layer_s[i] : 0;
    return net->timed_forwards;
}

/* Training forward and backward of one mini-batch; *cost receives its network cost. */
static dn_status forward_backward(dn_network *net, const float *x, const float *y, double *cost)
{
    const dn_net_info *in = &net->info;
    dn_ctx *ctx = &net->ctx;
    DN_TRY(ctx->backend->upload(&net->input, 0, x, (size_t)in->batch * in->inputs));
    DN_TRY(ctx->backend->upload(&ctx->truth, 0, y, (size_t)in->batch * ctx->truth_size));
    ctx->training = 1;
    const double t0 = now_s();
    dn_status st = forward_all(net, net->info.batch);
    const double t1 = now_s();
    if (st == DN_OK) st = backward_all(net);
    net->phase_s[0] += t1 - t0;
    net->phase_s[1] += now_s() - t1;
    ctx->training = 0;
    *cost = network_cost(net);
    return st;
}

static const char *const param_names[] = {"weights", "biases", "scales", "rolling_mean", "rolling_variance"};

dn_status dn_network_param(dn_network *net, int index, const char *name, float **data, float **delta, int *count)
{
    if (index < 0 || index >= net->n)
        return dn_fail(DN_ERR_SHAPE, "layer index %d out of range: the network has %d layers", index, net->n);
    dn_layer *l = &net->layers[index];
    size_t n = 0;
    *delta = NULL;
    DN_TRY(dn_network_sync_host(net)); /* first: it may restore the array */
    *data = l->ops->param ? l->ops->param(l, name, delta, &n) : NULL;
    if (!*data)
        return dn_fail(DN_ERR_SHAPE, "layer %d (%s) has no parameter '%s'", index, l->ops->name, name);
    *count = (int)n;
    dn_network_unprepare(net); /* the caller may write the array */
    return DN_OK;
}

/* Zero every parameter's update accumulator (momentum included). */
static void reset_updates(dn_network *net)
{
    for (int i = 0; i < net->n; i++) {
        dn_layer *l = &net->layers[i];
        for (size_t k = 0; l->ops->param && k < sizeof param_names / sizeof *param_names; k++) {
            float *delta = NULL;
            size_t count = 0;
            if (l->ops->param(l, param_names[k], &delta, &count) && delta) memset(delta, 0, sizeof(float) * count);
        }
    }
}

dn_status dn_network_backward(dn_network *net, const float *x, const float *y, int truth_size, double *loss,
                              float *input_delta)
{
    DN_TRY(prepare_training(net, truth_size));
    const dn_backend *b = net->ctx.backend;
    const size_t n_in = (size_t)net->info.batch * net->info.inputs;
    if (input_delta && !net->input_delta.data) DN_TRY(alloc_counted(net, &net->input_delta, n_in, "the input delta"));
    if (!input_delta) release_counted(net, &net->input_delta);
    DN_TRY(dn_network_sync_host(net));
    dn_network_unprepare(net);
    reset_updates(net);
    memset(net->phase_s, 0, sizeof net->phase_s);
    if (input_delta) DN_TRY(zero(b, &net->input_delta, 0, n_in));
    DN_TRY(params_will_change(net));
    DN_TRY(forward_backward(net, x, y, loss));
    return input_delta ? b->download(input_delta, &net->input_delta, 0, n_in) : DN_OK;
}

dn_status dn_network_begin_step(dn_network *net, int truth_size)
{
    DN_TRY(prepare_training(net, truth_size));
    release_counted(net, &net->input_delta);
    DN_TRY(params_will_change(net));
    memset(net->phase_s, 0, sizeof net->phase_s);
    return DN_OK;
}

dn_status dn_network_accumulate(dn_network *net, const float *x, const float *y, int truth_size, double *total)
{
    dn_net_info *in = &net->info;
    *total = 0;
    for (int s = 0; s < in->subdivisions; s++) {
        double cost;
        in->seen += in->batch;
        DN_TRY(forward_backward(net, x + (size_t)s * in->batch * in->inputs, y + (size_t)s * in->batch * truth_size,
                                &cost));
        *total += cost;
    }
    return DN_OK;
}

dn_status dn_network_apply_update(dn_network *net, int images, float momentum)
{
    dn_net_info *in = &net->info;
    in->cur_iteration++;
    dn_update up = {images, dn_network_current_rate(net), momentum, in->decay};
    const double t0 = now_s();
    for (int i = 0; i < net->n; i++) {
        dn_layer *l = &net->layers[i];
        const dn_kernels *k = net->ctx.backend->kernels[l->kind];
        if (l->train && k->update) DN_TRY(k->update(l, &up, &net->ctx));
    }
    net->phase_s[2] = now_s() - t0;
    return DN_OK;
}

dn_status dn_network_train_step(dn_network *net, const float *x, const float *y, int truth_size, float *loss)
{
    const dn_net_info *in = &net->info;
    double total;
    DN_TRY(dn_network_begin_step(net, truth_size));
    DN_TRY(dn_network_accumulate(net, x, y, truth_size, &total));
    DN_TRY(dn_network_apply_update(net, in->batch * in->subdivisions, in->momentum));
    *loss = (float)(total / (in->subdivisions * in->batch));
    return DN_OK;
}

/* Copy every parameter array (values and update accumulators) from `from` to `to`,
   which have the same layers; fails when a count differs. */
static dn_status copy_params(dn_network *to, dn_network *from)
{
    for (int i = 0; i < to->n; i++) {
        dn_layer *a = &to->layers[i], *b = &from->layers[i];
        for (size_t k = 0; a->ops->param && k < sizeof param_names / sizeof *param_names; k++) {
            float *da = NULL, *db = NULL;
            size_t na = 0, nb = 0;
            float *va = a->ops->param(a, param_names[k], &da, &na), *vb = b->ops->param(b, param_names[k], &db, &nb);
            if (!va || !vb) continue;
            if (na != nb)
                return dn_fail(DN_ERR_SHAPE, "%s: layer %d [%s] has %zu %s at %d x %d but %zu at %d x %d: its "
                               "parameters depend on the input size, so the network cannot be resized",
                               from->cfg_path, i, a->ops->name, nb, param_names[k], from->info.width,
                               from->info.height, na, to->info.width, to->info.height);
            memcpy(va, vb, sizeof(float) * na);
            if (da && db) memcpy(da, db, sizeof(float) * na);
        }
    }
    return DN_OK;
}

dn_status dn_network_resize(dn_network *net, int width, int height)
{
    if (width < 1 || height < 1 || (long)width * height > (1L << 26))
        return dn_fail(DN_ERR_SHAPE, "cannot resize to %d x %d: width and height must be positive", width, height);
    dn_network *fresh = calloc(1, sizeof *fresh);
    if (!fresh) return dn_fail(DN_ERR_OOM, "out of memory resizing %s", net->cfg_path);
    fresh->cfg = net->cfg;
    fresh->cfg_path = net->cfg_path;
    fresh->ctx.backend = net->ctx.backend;
    fresh->max_memory = net->max_memory;
    fresh->ctx.device = net->ctx.device;
    fresh->keep_all = net->keep_all;
    fresh->keep = net->keep;
    dn_status st = dn_network_sync_host(net);
    if (st == DN_OK) st = build(fresh, net->info.train ? 0 : net->info.batch, width, height);
    if (st == DN_OK) st = copy_params(fresh, net);
    if (st == DN_OK) {
        fresh->info.seen = net->info.seen;
        fresh->info.cur_iteration = net->info.cur_iteration;
        fresh->want_prepared = net->want_prepared;
        fresh->ctx.rng = net->ctx.rng;
        fresh->ctx.threads = net->ctx.threads;
        fresh->ctx.cancel = net->ctx.cancel;
        const dn_network old = *net;
        *net = *fresh;
        *fresh = old;
        st = link_layers(net); /* the input tensors moved with the struct */
    }
    fresh->cfg = NULL; /* shared with net */
    fresh->cfg_path = NULL;
    fresh->ctx.device = NULL;
    fresh->keep = NULL;
    dn_network_free(fresh);
    return st;
}

dn_status dn_network_memory(const dn_network *net, dn_memory *m)
{
    const size_t scratch = net->arena_scratch * sizeof(float); /* inference: workspaces in the arena */
    m->activations = activation_bytes(net) - scratch;
    m->workspace = net->ctx.workspace.n * sizeof(float) + scratch;
    const size_t rest = m->activations + m->workspace;
    m->weights = net->bytes > rest ? net->bytes - rest : 0;
    return DN_OK;
}
