/* [convolutional] (spec §1.5, §3.2, §4.3): im2col + GEMM per sample and group,
   then batch norm or bias, then the activation. */
#include <math.h>
#include <string.h>

#include "layer_convolutional.h"

static const char *const ignored_keys[] = {"binary", "bin_output", "flipped", "dot", "sway", "rotate", "stretch",
                                           "stretch_sway", "angle", "grad_centr", "reverse", "coordconv",
                                           "stream", "wait_stream", "cbn", NULL};

static dn_status parse_share(dn_layer *l, dn_parse_ctx *ctx, conv *p)
{
    int ref = dn_opt_int(ctx, "share_index", -1000000), idx;
    p->shared_index = -1;
    if (ref == -1000000) return DN_OK;
    DN_TRY(dn_opt_layer_ref(ctx, "share_index", ref, &idx));
    const dn_layer *src = &ctx->layers[idx];
    const conv *sp = src->p;
    if (src->ops != l->ops || sp->nweights != p->nweights || sp->n != p->n ||
        src->batch_normalize != l->batch_normalize)
        return dn_parse_fail(ctx, "share_index=%d must name a [convolutional] layer of the same shape", ref);
    p->shared = sp->shared ? sp->shared : sp;
    p->shared_index = sp->shared ? sp->shared_index : idx;
    ((conv *)p->shared)->lent = 1;
    return DN_OK;
}

static dn_status parse(dn_layer *l, dn_parse_ctx *ctx)
{
    conv *p = calloc(1, sizeof *p);
    if (!(l->p = p)) return dn_fail(DN_ERR_OOM, "out of memory");
    DN_TRY(dn_require_image(ctx, l));
    if (dn_opt_int(ctx, "xnor", 0))
        return dn_parse_fail(ctx, "xnor=1 (binary) convolutions are not supported; remove xnor=1 to run it as a "
                             "float convolution");
    if (dn_opt_int(ctx, "antialiasing", 0))
        return dn_parse_fail(ctx, "antialiasing=1 is not supported");
    if (dn_opt_int(ctx, "assisted_excitation", 0))
        return dn_parse_fail(ctx, "assisted_excitation is not supported");
    dn_opt_accept(ctx, ignored_keys);
    p->n = dn_opt_int(ctx, "filters", 1);
    int size = dn_opt_int(ctx, "size", 1);
    int stride = dn_opt_int(ctx, "stride", 1);
    int sx = dn_opt_int(ctx, "stride_x", -1), sy = dn_opt_int(ctx, "stride_y", -1);
    if (sx < 1) sx = stride;
    if (sy < 1) sy = stride;
    int pad = dn_opt_int(ctx, "padding", 0);
    if (dn_opt_int(ctx, "pad", 0)) pad = size / 2;
    p->groups = dn_opt_int(ctx, "groups", 1);
    if (p->groups < 1) return dn_parse_fail(ctx, "groups=%d must be >= 1 (1: an ordinary convolution)", p->groups);
    int dilation = dn_opt_int(ctx, "dilation", 1);
    if (size == 1) dilation = 1;
    l->batch_normalize = dn_opt_int(ctx, "batch_normalize", 0);
    DN_TRY(dn_opt_activation(ctx, "activation", "logistic", &p->act));
    if (p->n < 1 || size < 1 || sx < 1 || sy < 1 || pad < 0 || dilation < 1)
        return dn_parse_fail(ctx, "filters=%d, size=%d, stride=%d/%d, padding=%d and dilation=%d must be positive",
                             p->n, size, sx, sy, pad, dilation);
    if (l->c % p->groups || p->n % p->groups)
        return dn_parse_fail(ctx, "groups=%d must divide both the input channels (%d) and filters (%d)", p->groups,
                             l->c, p->n);
    p->g = (dn_conv_geom){l->c / p->groups, l->h, l->w, size, sx, sy, pad, dilation, 0, 0};
    l->out_w = (l->w + 2 * pad - size) / sx + 1;
    l->out_h = (l->h + 2 * pad - size) / sy + 1;
    l->out_c = p->n;
    if (l->w + 2 * pad < size || l->h + 2 * pad < size || l->out_w < 1 || l->out_h < 1)
        return dn_parse_fail(ctx, "a %dx%d kernel does not fit the %d x %d input with padding %d", size, size, l->w,
                             l->h, pad);
    p->g.out_w = l->out_w;
    p->g.out_h = l->out_h;
    double nw = (double)p->g.c * p->n * size * size;
    if (nw > 1 << 30 || (double)l->out_w * l->out_h * l->out_c > 1 << 30)
        return dn_parse_fail(ctx, "the layer is too large (%.0f weights)", nw);
    p->nweights = (int)nw;
    l->outputs = l->out_w * l->out_h * l->out_c;
    l->bflops = 2.0 * p->nweights * l->out_h * l->out_w / 1e9;
    DN_TRY(parse_share(l, ctx, p));
    const int train = l->train;
    if (!p->shared) {
        DN_TRY(dn_alloc_floats(&p->weights, p->nweights, "convolution weights"));
        DN_TRY(dn_alloc_floats(&p->biases, p->n, "convolution biases"));
        float scale = sqrtf(2.f / (size * size * p->g.c));
        for (int i = 0; i < p->nweights && !ctx->estimate; i++)
            p->weights[i] = scale * dn_rng_uniform(ctx->rng, -1, 1);
        if (l->batch_normalize)
            DN_TRY(dn_bn_init(&p->bn, p->n, l->out_w * l->out_h, l->batch, ctx->train, .01f));
    }
    if (train && !p->shared) {
        DN_TRY(dn_alloc_floats(&p->weight_updates, p->nweights, "convolution weight updates"));
        DN_TRY(dn_alloc_floats(&p->bias_updates, p->n, "convolution bias updates"));
    }
    if (train) {
        if (dn_act_needs_input(p->act))
            DN_TRY(dn_alloc_floats(&p->preact, (size_t)l->batch * l->outputs, "pre-activations"));
        if (p->shared && l->batch_normalize)
            return dn_parse_fail(ctx, "training a share_index layer with batch_normalize is not supported");
    }
    return DN_OK;
}

static size_t n_weights(const dn_layer *l)
{
    const conv *p = l->p;
    if (p->shared) return 0;
    return (size_t)p->n * (l->batch_normalize ? 4 : 1) + p->nweights;
}

static void read_weights(dn_layer *l, dn_reader *r)
{
    conv *p = l->p;
    if (p->shared) return;
    dn_read_floats(r, p->biases, p->n);
    if (l->batch_normalize && !l->dontloadscales) {
        dn_read_floats(r, p->bn.scales, p->n);
        dn_read_floats(r, p->bn.mean, p->n);
        dn_read_floats(r, p->bn.variance, p->n);
    }
    dn_read_floats(r, p->weights, p->nweights);
}

static void write_weights(const dn_layer *l, dn_writer *w)
{
    const conv *p = l->p;
    if (p->shared) return;
    dn_write_floats(w, p->biases, p->n);
    if (l->batch_normalize) {
        dn_write_floats(w, p->bn.scales, p->n);
        dn_write_floats(w, p->bn.mean, p->n);
        dn_write_floats(w, p->bn.variance, p->n);
    }
    dn_write_floats(w, p->weights, p->nweights);
}

static float *param(dn_layer *l, const char *name, float **delta, size_t *count)
{
    conv *p = l->p;
    if (p->shared) return NULL;
    *count = p->n;
    if (strcmp(name, "biases") == 0) {
        *delta = p->bias_updates;
        return p->biases;
    }
    if (strcmp(name, "weights") == 0) {
        *delta = p->weight_updates;
        *count = p->nweights;
        return p->weights;
    }
    return l->batch_normalize ? dn_bn_param(&p->bn, name, delta) : NULL;
}

static void describe(const dn_layer *l, char *buf, size_t n)
{
    const conv *p = l->p;
    char filters[32], kernel[40];
    if (p->groups > 1) snprintf(filters, sizeof filters, "%5d/%4d ", p->n, p->groups);
    else snprintf(filters, sizeof filters, "%5d      ", p->n);
    if (p->g.stride_x != p->g.stride_y)
        snprintf(kernel, sizeof kernel, "%2dx%2d/%2dx%2d ", p->g.size, p->g.size, p->g.stride_x, p->g.stride_y);
    else if (p->g.dilation > 1)
        snprintf(kernel, sizeof kernel, "%2d x%2d/%2d(%1d)", p->g.size, p->g.size, p->g.stride_x, p->g.dilation);
    else
        snprintf(kernel, sizeof kernel, "%2d x%2d/%2d   ", p->g.size, p->g.size, p->g.stride_x);
    snprintf(buf, n, "%s%s%s%4d x%4d x%4d -> %4d x%4d x%4d %5.3f BF", p->shared ? "convS " : "conv  ", filters,
             kernel, l->w, l->h, l->c, l->out_w, l->out_h, l->out_c, l->bflops);
}

static void free_conv(dn_layer *l)
{
    conv *p = l->p;
    if (!p) return;
    free(p->weights);
    free(p->biases);
    dn_bn_free(&p->bn);
    free(p->fused_scales);
    free(p->fused_biases);
    free(p->packed_weights);
    free(p->weight_updates);
    free(p->bias_updates);
    free(p->preact);
}

static void attrs(const dn_layer *l, dn_attrs *a)
{
    const conv *p = l->p;
    dn_attr_int(a, "filters", p->n);
    dn_attr_int(a, "size", p->g.size);
    dn_attr_int(a, "stride_x", p->g.stride_x);
    dn_attr_int(a, "stride_y", p->g.stride_y);
    dn_attr_int(a, "padding", p->g.pad);
    dn_attr_int(a, "dilation", p->g.dilation);
    dn_attr_int(a, "groups", p->groups);
    dn_attr_str(a, "activation", dn_act_name(p->act));
    dn_attr_int(a, "share_index", p->shared_index);
}

const dn_layer_ops dn_layer_convolutional = {
    .name = "convolutional", .alias = "conv", .parse = parse, .n_weights = n_weights,
    .read_weights = read_weights, .write_weights = write_weights, .param = param, .describe = describe, .attrs = attrs, .free = free_conv,
};
