/* [local] (upstream's local_layer.c), inference: a locally connected layer, a convolution
   whose filters differ at every output position, plus a bias per output value, then the
   activation (default logistic). Upstream computes the output size as (h - 1) / stride + 1
   when pad is set and (h - size) / stride + 1 otherwise, but pads the input with `pad`
   pixels, so only pad=0 or size = 2 * pad + 1 are consistent; others are refused.
   Weights records: biases[outputs], then weights in the order of layer_local.h. */
#include <math.h>
#include <string.h>

#include "layer_local.h"

static dn_status parse(dn_layer *l, dn_parse_ctx *ctx)
{
    local *p = calloc(1, sizeof *p);
    if (!(l->p = p)) return dn_fail(DN_ERR_OOM, "out of memory");
    DN_TRY(dn_require_image(ctx, l));
    const int filters = dn_opt_int(ctx, "filters", 1);
    p->size = dn_opt_int(ctx, "size", 1);
    p->stride = dn_opt_int(ctx, "stride", 1);
    p->pad = dn_opt_int(ctx, "pad", 0);
    DN_TRY(dn_opt_activation(ctx, "activation", "logistic", &p->act));
    if (ctx->train)
        return dn_parse_fail(ctx, "training a [local] layer is not supported; build the network for inference");
    if (filters < 1 || p->size < 1 || p->stride < 1 || p->pad < 0 || p->size > 64 || p->pad > 64)
        return dn_parse_fail(ctx, "filters=%d, size=%d and stride=%d must be >= 1, pad=%d >= 0", filters, p->size,
                             p->stride, p->pad);
    if (p->pad && p->size != 2 * p->pad + 1)
        return dn_parse_fail(ctx, "pad=%d with size=%d: upstream sizes the output as if size were %d, so the "
                             "two disagree; use pad=0 or size=%d", p->pad, p->size, 2 * p->pad + 1,
                             2 * p->pad + 1);
    const int span_h = p->pad ? l->h - 1 : l->h - p->size, span_w = p->pad ? l->w - 1 : l->w - p->size;
    if (span_h < 0 || span_w < 0)
        return dn_parse_fail(ctx, "size=%d is larger than the input %d x %d", p->size, l->w, l->h);
    l->out_h = span_h / p->stride + 1;
    l->out_w = span_w / p->stride + 1;
    l->out_c = filters;
    l->outputs = l->out_w * l->out_h * filters;
    const size_t nw = local_n_weights(l);
    if (nw > DN_MAX_TENSOR) return dn_parse_fail(ctx, "%zu weights are too many", nw);
    l->bflops = 2.0 * nw / 1e9;
    DN_TRY(dn_alloc_floats(&p->weights, nw, "local weights"));
    DN_TRY(dn_alloc_floats(&p->biases, l->outputs, "local biases"));
    const float scale = sqrtf(2.f / (p->size * p->size * l->c));
    for (size_t i = 0; i < nw; i++) p->weights[i] = scale * dn_rng_uniform(ctx->rng, -1, 1);
    return DN_OK;
}

static size_t n_weights(const dn_layer *l) { return l->outputs + local_n_weights(l); }

static void read_weights(dn_layer *l, dn_reader *r)
{
    local *p = l->p;
    dn_read_floats(r, p->biases, l->outputs);
    dn_read_floats(r, p->weights, local_n_weights(l));
}

static void write_weights(const dn_layer *l, dn_writer *w)
{
    const local *p = l->p;
    dn_write_floats(w, p->biases, l->outputs);
    dn_write_floats(w, p->weights, local_n_weights(l));
}

static float *param(dn_layer *l, const char *name, float **delta, size_t *count)
{
    local *p = l->p;
    *delta = NULL;
    if (strcmp(name, "biases") == 0) {
        *count = l->outputs;
        return p->biases;
    }
    if (strcmp(name, "weights") == 0) {
        *count = local_n_weights(l);
        return p->weights;
    }
    return NULL;
}

static void describe(const dn_layer *l, char *buf, size_t n)
{
    snprintf(buf, n, "Local Layer: %d x %d x %d image, %d filters -> %d x %d x %d image", l->h, l->w, l->c,
             l->out_c, l->out_h, l->out_w, l->out_c);
}

static void attrs(const dn_layer *l, dn_attrs *a)
{
    const local *p = l->p;
    dn_attr_int(a, "filters", l->out_c);
    dn_attr_int(a, "size", p->size);
    dn_attr_int(a, "stride", p->stride);
    dn_attr_int(a, "pad", p->pad);
    dn_attr_str(a, "activation", dn_act_name(p->act));
}

static void free_local(dn_layer *l)
{
    local *p = l->p;
    if (!p) return;
    free(p->weights);
    free(p->biases);
}

const dn_layer_ops dn_layer_local = {
    .name = "local", .parse = parse, .n_weights = n_weights, .read_weights = read_weights,
    .write_weights = write_weights, .param = param, .describe = describe, .attrs = attrs, .free = free_local,
};
