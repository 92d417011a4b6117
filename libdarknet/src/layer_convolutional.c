/* [convolutional] (spec §1.5, §3.2, §4.3): im2col + GEMM per sample and group,
   then batch norm or bias, then the activation. */
#include <math.h>
#include <string.h>

#include "dn.h"

typedef struct conv {
    int n, groups, nweights;
    dn_conv_geom g;        /* geometry of one group's input */
    dn_act act;
    const struct conv *shared; /* share_index: weights live in that layer */
    float *weights, *biases;
    dn_bn bn;
    /* inference weights with batch norm folded in (spec §3.3): allocated for
       inference networks, filled by fuse() */
    float *fused_weights, *fused_biases;
    float *wino_weights;   /* fused weights Winograd-transformed ((m+2)^2, n, c), 3x3 layers only */
    int wino_m;            /* Winograd output tile size (2 or 4) where wino_weights is set */
    float *weight_updates, *bias_updates;
    float *preact;         /* pre-activation copy for swish/mish backward */
} conv;

static const char *const ignored_keys[] = {"binary", "bin_output", "flipped", "dot", "sway", "rotate", "stretch",
                                           "stretch_sway", "angle", "grad_centr", "reverse", "coordconv",
                                           "stream", "wait_stream", "cbn", NULL};

static int is_direct(const conv *p)
{
    /* a 1x1, stride-1 convolution reads its input directly (spec §3.2) */
    return p->g.size == 1 && p->g.stride_x == 1 && p->g.stride_y == 1 && p->g.dilation == 1 && p->g.pad == 0;
}

/* a 3x3, stride-1, pad-1 convolution runs as Winograd F(m x m, 3x3) when fused and
   dn_wino_tile finds it faster */
static int is_wino(const conv *p)
{
    return p->g.size == 3 && p->g.stride_x == 1 && p->g.stride_y == 1 && p->g.dilation == 1 && p->g.pad == 1 &&
           p->groups == 1;
}

/* Whether forward runs on the folded batch-norm weights. */
static int use_fused(const dn_layer *l, const dn_network *net)
{
    const conv *p = l->p;
    return net->info.fused && !net->training && p->fused_biases;
}

static const conv *params(const dn_layer *l)
{
    const conv *p = l->p;
    return p->shared ? p->shared : p;
}

static dn_status parse_share(dn_layer *l, dn_parse_ctx *ctx, conv *p)
{
    int ref = dn_opt_int(ctx, "share_index", -1000000), idx;
    if (ref == -1000000) return DN_OK;
    DN_TRY(dn_opt_layer_ref(ctx, "share_index", ref, &idx));
    const dn_layer *src = &ctx->net->layers[idx];
    const conv *sp = src->p;
    if (src->ops != l->ops || sp->nweights != p->nweights || sp->n != p->n ||
        src->batch_normalize != l->batch_normalize)
        return dn_parse_fail(ctx, "share_index=%d must name a [convolutional] layer of the same shape", ref);
    p->shared = sp->shared ? sp->shared : sp;
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
    if (p->groups < 1)
        return dn_parse_fail(ctx, "groups=%d must be >= 1 (1 = an ordinary convolution; upstream silently reads "
                             "0 as 1)", p->groups);
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
    if (!ctx->net->info.train && l->batch_normalize) {
        DN_TRY(dn_alloc_floats(&p->fused_biases, p->n, "fused convolution biases"));
        p->wino_m = is_wino(p) ? dn_wino_tile(p->g.c, p->n, l->h, l->w) : 0;
        if (p->wino_m) /* a Winograd layer keeps only its transformed weights */
            DN_TRY(dn_alloc_floats(&p->wino_weights, (size_t)(p->wino_m + 2) * (p->wino_m + 2) * p->n * p->g.c,
                                   "Winograd convolution weights"));
        else
            DN_TRY(dn_alloc_floats(&p->fused_weights, p->nweights, "fused convolution weights"));
    }
    if (!p->shared) {
        DN_TRY(dn_alloc_floats(&p->weights, p->nweights, "convolution weights"));
        DN_TRY(dn_alloc_floats(&p->biases, p->n, "convolution biases"));
        float scale = sqrtf(2.f / (size * size * p->g.c));
        for (int i = 0; i < p->nweights; i++) p->weights[i] = scale * dn_rng_uniform(&ctx->net->rng, -1, 1);
        if (l->batch_normalize)
            DN_TRY(dn_bn_init(&p->bn, p->n, l->out_w * l->out_h, l->batch, train, .01f));
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

static size_t workspace(const dn_layer *l)
{
    const conv *p = l->p;
    size_t n = is_direct(p) ? 0 : (size_t)p->g.c * p->g.size * p->g.size * l->out_w * l->out_h;
    if (p->wino_weights) {
        const size_t wn = dn_wino_workspace(p->g.c, p->n, l->h, l->w, p->wino_m);
        if (wn > n) n = wn;
    }
    return n;
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

/* Fold batch norm into the weights and bias (spec §3.3); the raw arrays stay
   for saving and training. */
static void fuse(dn_layer *l)
{
    conv *p = l->p;
    const conv *src = params(l);
    if (!p->fused_biases) return;
    const int per = p->nweights / p->n, taps = (p->wino_m + 2) * (p->wino_m + 2);
    if (p->wino_weights) dn_wino_weights(src->weights, p->n, p->g.c, p->wino_m, p->wino_weights);
    for (int f = 0; f < p->n; f++) {
        double sd = sqrt((double)src->bn.variance[f] + 1e-5);
        float t = (float)(src->bn.scales[f] / sd);
        p->fused_biases[f] = (float)(src->biases[f] - src->bn.scales[f] * src->bn.mean[f] / sd);
        if (p->wino_weights) /* the transform is linear: scale each filter's transformed taps */
            for (int e = 0; e < taps; e++) {
                float *u = p->wino_weights + ((size_t)e * p->n + f) * p->g.c;
                for (int c = 0; c < p->g.c; c++) u[c] *= t;
            }
        else
            for (int i = 0; i < per; i++) p->fused_weights[f * per + i] = src->weights[f * per + i] * t;
    }
}

static void forward(dn_layer *l, dn_network *net, const float *in)
{
    conv *p = l->p;
    const conv *src = params(l);
    const int fused = use_fused(l, net);
    const float *weights = fused ? p->fused_weights : src->weights;
    const int ng = p->n / p->groups, k = p->g.c * p->g.size * p->g.size, spatial = l->out_w * l->out_h;
    for (int b = 0; b < l->batch; b++)
        for (int g = 0; g < p->groups; g++) {
            if (fused && p->wino_weights) {
                dn_wino_conv3x3(in + (size_t)b * l->inputs, p->g.c, l->h, l->w, p->n, p->wino_m, p->wino_weights,
                                l->output + (size_t)b * l->outputs, net->workspace);
                continue;
            }
            const float *im = in + (size_t)b * l->inputs + (size_t)g * p->g.c * l->h * l->w;
            const float *col = im;
            if (!is_direct(p)) {
                dn_im2col(im, &p->g, net->workspace);
                col = net->workspace;
            }
            float *out = l->output + (size_t)b * l->outputs + (size_t)g * ng * spatial;
            dn_gemm(0, 0, ng, spatial, k, 1, weights + (size_t)g * ng * k, k, col, spatial, 0, out, spatial);
        }
    const float *bias = fused ? p->fused_biases : src->biases;
    if (!fused && l->batch_normalize) dn_bn_forward((dn_bn *)&src->bn, l->output, l->batch, net->training);
    if (net->training && p->preact) {
        dn_add_bias(l->output, bias, l->batch, p->n, spatial);
        memcpy(p->preact, l->output, sizeof(float) * l->batch * l->outputs);
        dn_activate(l->output, l->batch, p->n, spatial, p->act);
    } else {
        dn_activate_bias(l->output, bias, l->batch, p->n, spatial, p->act);
    }
}

/* A share_index layer accumulates into the updates of the layer owning the weights
   (none when that layer is frozen). */
static void backward(dn_layer *l, dn_network *net, const float *in, float *in_delta)
{
    conv *p = l->p;
    const conv *src = params(l);
    const int ng = p->n / p->groups, k = p->g.c * p->g.size * p->g.size, spatial = l->out_w * l->out_h;
    dn_activate_grad(p->preact, l->output, l->batch, p->n, spatial, p->act, l->delta);
    if (src->bias_updates) dn_backward_bias(src->bias_updates, l->delta, l->batch, p->n, spatial);
    if (l->batch_normalize) dn_bn_backward(&p->bn, l->delta, l->batch);
    const float *weights = src->weights;
    for (int b = 0; b < l->batch; b++)
        for (int g = 0; g < p->groups; g++) {
            const size_t in_off = (size_t)b * l->inputs + (size_t)g * p->g.c * l->h * l->w;
            const float *delta = l->delta + (size_t)b * l->outputs + (size_t)g * ng * spatial;
            const float *col = in + in_off;
            if (!is_direct(p)) {
                dn_im2col(in + in_off, &p->g, net->workspace);
                col = net->workspace;
            }
            if (src->weight_updates)
                dn_gemm(0, 1, ng, k, spatial, 1, delta, spatial, col, spatial, 1,
                        src->weight_updates + (size_t)g * ng * k, k);
            if (!in_delta) continue;
            const float *w = weights + (size_t)g * ng * k;
            if (is_direct(p)) {
                dn_gemm(1, 0, k, spatial, ng, 1, w, k, delta, spatial, 1, in_delta + in_off, spatial);
            } else {
                dn_gemm(1, 0, k, spatial, ng, 1, w, k, delta, spatial, 0, net->workspace, spatial);
                dn_col2im_add(net->workspace, &p->g, in_delta + in_off);
            }
        }
}

static void update(dn_layer *l, const dn_update *u)
{
    conv *p = l->p;
    if (p->shared) return;
    const float lr = u->learning_rate * l->lr_mult;
    dn_sgd(p->weights, p->weight_updates, p->nweights, u, lr, 1);
    dn_sgd(p->biases, p->bias_updates, p->n, u, lr, 0);
    if (l->batch_normalize) dn_sgd(p->bn.scales, p->bn.scale_updates, p->n, u, lr, 0);
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
    free(p->fused_weights);
    free(p->fused_biases);
    free(p->wino_weights);
    free(p->weight_updates);
    free(p->bias_updates);
    free(p->preact);
}

const dn_layer_ops dn_layer_convolutional = {
    .name = "convolutional", .alias = "conv", .parse = parse, .workspace = workspace, .n_weights = n_weights,
    .read_weights = read_weights, .write_weights = write_weights, .fuse = fuse, .forward = forward,
    .backward = backward, .update = update, .param = param, .describe = describe, .free = free_conv,
};
