/* What training a cfg will allocate, known before it is allocated: the layers are built for
   mini-batches of 1 and 2 images without drawing weights (allocations are reserved, never
   touched), and every allocation is either fixed or grows with the mini-batch. */
#include <string.h>

#include "dn.h"

/* The two sizes a training network of `cfg` allocates, and its shapes. */
typedef struct sizing {
    size_t fixed, per_image;  /* bytes: total = fixed + minibatch * per_image */
    size_t deltas, optimizer, workspace; /* deltas per image */
    dn_net_info info;
} sizing;

/* Bytes a training build of mini-batch `m` allocates (the input and truth buffers included). */
static dn_status dry_build(const dn_cfg *cfg, int m, int width, int height, size_t *bytes, sizing *s)
{
    dn_network *net = calloc(1, sizeof *net);
    if (!net) return dn_fail(DN_ERR_OOM, "out of memory estimating %s", cfg->path);
    net->ctx.backend = dn_cpu_backend();
    net->estimate_minibatch = m;
    *bytes = 0;
    dn_alloc_tally(bytes, 0);
    dn_status st = dn_network_parse(cfg, 0, width, height, net);
    dn_alloc_tally(NULL, 0);
    if (st == DN_OK) {
        int truths = 0;
        s->info = net->info;
        s->deltas = s->optimizer = 0;
        for (int i = 0; i < net->n; i++) {
            dn_layer *l = &net->layers[i];
            if (l->truths > truths) truths = l->truths;
            s->deltas += l->ops->in_place ? 0 : l->delta.n * sizeof(float) / m;
            static const char *const names[] = {"weights", "biases", "scales"}; /* the updated arrays */
            for (int k = 0; l->ops->param && k < 3; k++) {
                float *updates = NULL;
                size_t count = 0;
                if (l->ops->param(l, names[k], &updates, &count) && updates) s->optimizer += count * sizeof(float);
            }
        }
        s->info.truths = truths ? truths : net->layers[dn_network_output_layer(net)].outputs;
        s->workspace = net->ctx.workspace.n * sizeof(float);
        *bytes += (size_t)m * (net->info.inputs + s->info.truths) * sizeof(float);
    }
    dn_network_free(net);
    return st;
}

static dn_status sizing_of(const dn_cfg *cfg, int width, int height, sizing *s)
{
    size_t one, two;
    DN_TRY(dry_build(cfg, 1, width, height, &one, s));
    DN_TRY(dry_build(cfg, 2, width, height, &two, s));
    s->per_image = two - one;
    s->fixed = one - s->per_image;
    return DN_OK;
}

static dn_status estimate(const dn_cfg *cfg, int batch, int subdivisions, int width, int height,
                          dn_training_memory *out)
{
    sizing s;
    DN_TRY(sizing_of(cfg, width, height, &s));
    memset(out, 0, sizeof *out);
    out->batch = batch > 0 ? batch : s.info.cfg_batch;
    out->subdivisions = subdivisions > 0 ? subdivisions : s.info.subdivisions;
    out->minibatch = out->batch / out->subdivisions;
    out->width = s.info.width;
    out->height = s.info.height;
    out->inputs = s.info.inputs;
    out->truths = s.info.truths;
    if (out->minibatch < 1)
        return dn_fail(DN_ERR_SHAPE, "%s: batch=%d is smaller than subdivisions=%d: the mini-batch would be empty",
                       cfg->path, out->batch, out->subdivisions);
    const size_t m = (size_t)out->minibatch;
    out->per_image = s.per_image;
    out->total = s.fixed + m * s.per_image;
    out->deltas = m * s.deltas;
    out->activations = m * s.per_image - out->deltas;
    out->workspace = s.workspace;
    out->optimizer = s.optimizer;
    out->weights = s.fixed - s.workspace - s.optimizer;
    return DN_OK;
}

dn_status dn_estimate_training_memory(const char *cfg_path, int batch, int subdivisions, int width, int height,
                                      dn_training_memory *out)
{
    if (batch < 0 || subdivisions < 0 || width < 0 || height < 0 || (width > 0) != (height > 0))
        return dn_fail(DN_ERR_SHAPE, "batch=%d, subdivisions=%d, width=%d and height=%d: give positive values (0: "
                       "the cfg's), width and height together", batch, subdivisions, width, height);
    dn_cfg *cfg;
    DN_TRY(dn_cfg_read(cfg_path, &cfg));
    const dn_status st = estimate(cfg, batch, subdivisions, width, height, out);
    dn_cfg_free(cfg);
    return st;
}

dn_status dn_check_training_memory(const dn_cfg *cfg, int width, int height, size_t limit, const char *limit_name)
{
    sizing s;
    DN_TRY(sizing_of(cfg, width, height, &s));
    const int batch = s.info.cfg_batch, sub = s.info.subdivisions, m = batch / sub;
    const size_t need = s.fixed + (size_t)m * s.per_image;
    if (m < 1 || need <= limit) return DN_OK; /* an empty mini-batch fails in the build, with its message */
    char head[512];
    snprintf(head, sizeof head, "%s: training with batch=%d subdivisions=%d (mini-batch %d) at %d x %d needs %zu "
             "MiB (%zu MiB per image), more than %s", cfg->path, batch, sub, m, s.info.width, s.info.height,
             need >> 20, s.per_image >> 20, limit_name);
    for (int k = sub + 1; k <= batch; k++) /* the smallest subdivisions dividing batch that fits */
        if (batch % k == 0 && s.fixed + (size_t)(batch / k) * s.per_image <= limit)
            return dn_fail(DN_ERR_OOM, "%s: set subdivisions=%d in [net] (mini-batch %d, %zu MiB)", head, k,
                           batch / k, (s.fixed + (size_t)(batch / k) * s.per_image) >> 20);
    /* a mini-batch of one image does not fit: the largest input, multiples of 32 with the same
       aspect, that does */
    for (int w = (s.info.width - 1) / 32 * 32; w >= 32; w -= 32) {
        const int h = (int)((double)s.info.height * w / s.info.width / 32 + .5) * 32;
        sizing t;
        if (h < 32 || sizing_of(cfg, w, h, &t) != DN_OK) continue;
        if (t.fixed + t.per_image <= limit)
            return dn_fail(DN_ERR_OOM, "%s; even subdivisions=%d (one image per mini-batch) needs %zu MiB: set "
                           "subdivisions=%d and width=%d height=%d in [net] (%zu MiB)", head, batch,
                           (s.fixed + s.per_image) >> 20, batch, w, h, (t.fixed + t.per_image) >> 20);
    }
    return dn_fail(DN_ERR_OOM, "%s; the weights, their updates and the workspace alone need %zu MiB: use a smaller "
                   "model", head, s.fixed >> 20);
}

dn_status dn_check_training_fits(const char *cfg_path, size_t limit)
{
    const size_t available = limit ? limit : dn_available_memory();
    char what[64];
    snprintf(what, sizeof what, limit ? "max_memory=%zu MiB" : "the %zu MiB of memory available", available >> 20);
    dn_cfg *cfg;
    DN_TRY(dn_cfg_read(cfg_path, &cfg));
    const dn_status st = dn_check_training_memory(cfg, 0, 0, available, what);
    dn_cfg_free(cfg);
    return st;
}
