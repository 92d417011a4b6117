/* [batchnorm] (spec §1.5, §3.3, §4.4): per-channel normalisation, scale and bias. */
#include <string.h>

#include "layer_batchnorm.h"

static dn_status parse(dn_layer *l, dn_parse_ctx *ctx)
{
    batchnorm *p = calloc(1, sizeof *p);
    if (!(l->p = p)) return dn_fail(DN_ERR_OOM, "out of memory");
    DN_TRY(dn_require_image(ctx, l));
    l->out_w = l->w;
    l->out_h = l->h;
    l->out_c = l->c;
    l->outputs = l->inputs;
    l->batch_normalize = 1;
    /* a layer frozen by stopbackward still normalises with batch statistics in a training pass */
    DN_TRY(dn_bn_init(&p->bn, l->c, l->w * l->h, l->batch, ctx->train, .01f));
    DN_TRY(dn_alloc_floats(&p->biases, l->c, "batch-norm biases"));
    if (l->train) DN_TRY(dn_alloc_floats(&p->bias_updates, l->c, "batch-norm bias updates"));
    return DN_OK;
}

static size_t n_weights(const dn_layer *l) { return (size_t)l->c * 4; }

static void read_weights(dn_layer *l, dn_reader *r)
{
    batchnorm *p = l->p;
    dn_read_floats(r, p->biases, l->c);
    dn_read_floats(r, p->bn.scales, l->c);
    dn_read_floats(r, p->bn.mean, l->c);
    dn_read_floats(r, p->bn.variance, l->c);
}

static void write_weights(const dn_layer *l, dn_writer *w)
{
    const batchnorm *p = l->p;
    dn_write_floats(w, p->biases, l->c);
    dn_write_floats(w, p->bn.scales, l->c);
    dn_write_floats(w, p->bn.mean, l->c);
    dn_write_floats(w, p->bn.variance, l->c);
}

static float *param(dn_layer *l, const char *name, float **delta, size_t *count)
{
    batchnorm *p = l->p;
    *count = l->c;
    if (strcmp(name, "biases") == 0) {
        *delta = p->bias_updates;
        return p->biases;
    }
    return dn_bn_param(&p->bn, name, delta);
}

static void describe(const dn_layer *l, char *buf, size_t n)
{
    snprintf(buf, n, "Batch Normalization Layer: %d x %d x %d image", l->w, l->h, l->c);
}

static void free_batchnorm(dn_layer *l)
{
    batchnorm *p = l->p;
    if (!p) return;
    dn_bn_free(&p->bn);
    free(p->biases);
    free(p->bias_updates);
}

const dn_layer_ops dn_layer_batchnorm = {
    .name = "batchnorm", .parse = parse, .n_weights = n_weights, .read_weights = read_weights,
    .write_weights = write_weights,
    .param = param, .describe = describe, .free = free_batchnorm,
};
