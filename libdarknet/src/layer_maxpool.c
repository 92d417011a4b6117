/* [maxpool] (spec §1.5, §3.5, §4.3), including maxpool_depth. */
#include <float.h>
#include <string.h>

#include "dn.h"

typedef struct maxpool {
    dn_pool win;
    int depth, out_channels;
    int *argmax; /* flat input index of each output's maximum, training */
} maxpool;

static const char *const ignored_keys[] = {"maxpool_zero_nonmax", NULL};

static dn_status parse(dn_layer *l, dn_parse_ctx *ctx)
{
    maxpool *p = calloc(1, sizeof *p);
    if (!(l->p = p)) return dn_fail(DN_ERR_OOM, "out of memory");
    if (dn_opt_int(ctx, "antialiasing", 0)) return dn_parse_fail(ctx, "antialiasing=1 is not supported");
    dn_opt_accept(ctx, ignored_keys);
    p->depth = dn_opt_int(ctx, "maxpool_depth", 0);
    p->out_channels = dn_opt_int(ctx, "out_channels", 1);
    DN_TRY(dn_pool_parse(l, ctx, &p->win));
    if (p->depth) {
        if (p->out_channels < 1) return dn_parse_fail(ctx, "out_channels=%d must be >= 1", p->out_channels);
        if ((int64_t)l->w * l->h * p->out_channels * l->batch > DN_MAX_TENSOR)
            return dn_parse_fail(ctx, "out_channels=%d on a %d x %d input x batch %d is larger than the limit of %d "
                                 "floats", p->out_channels, l->w, l->h, l->batch, DN_MAX_TENSOR);
        l->out_w = l->w;
        l->out_h = l->h;
        l->out_c = p->out_channels;
        l->outputs = l->out_w * l->out_h * l->out_c;
    }
    if ((int64_t)l->batch * l->outputs > DN_MAX_TENSOR)
        return dn_parse_fail(ctx, "the output x batch %d is larger than the limit of %d floats", l->batch,
                             DN_MAX_TENSOR);
    if (l->train && !(p->argmax = calloc((size_t)l->batch * l->outputs, sizeof *p->argmax)))
        return dn_fail(DN_ERR_OOM, "out of memory for maxpool indexes");
    return DN_OK;
}

/* Output channel g is the max over input channels k = g (mod out_channels) at each pixel. */
static void forward_depth(dn_layer *l, const maxpool *p, const float *in)
{
    const int sp = l->w * l->h;
    #pragma omp parallel for collapse(2)
    for (int b = 0; b < l->batch; b++)
        for (int g = 0; g < l->out_c; g++)
            for (int i = 0; i < sp; i++) {
                float best = -FLT_MAX;
                int arg = -1;
                for (int k = g; k < l->c; k += p->out_channels) {
                    int idx = (b * l->c + k) * sp + i;
                    if (in[idx] > best) { best = in[idx]; arg = idx; }
                }
                int o = (b * l->out_c + g) * sp + i;
                l->output[o] = best;
                if (p->argmax) p->argmax[o] = arg;
            }
}

/* Inference (no argmax to record): the window max is separable, so take the max
   over the window's rows into one row, then over its columns. */
static void forward_separable(dn_layer *l, const dn_pool *w, const float *in)
{
    #pragma omp parallel for collapse(2)
    for (int b = 0; b < l->batch; b++)
        for (int k = 0; k < l->c; k++) {
            const float *plane = in + ((size_t)b * l->c + k) * l->h * l->w;
            float *out = l->output + ((size_t)b * l->c + k) * l->out_h * l->out_w;
            float row[l->w];
            for (int i = 0; i < l->out_h; i++) {
                int y0, y1, x0, x1;
                dn_pool_span(w, i, w->stride_y, l->h, &y0, &y1);
                for (int x = 0; x < l->w; x++) row[x] = -FLT_MAX;
                for (int y = y0; y < y1; y++) {
                    const float *src = plane + (size_t)y * l->w;
                    #pragma omp simd
                    for (int x = 0; x < l->w; x++) row[x] = src[x] > row[x] ? src[x] : row[x];
                }
                for (int j = 0; j < l->out_w; j++) {
                    dn_pool_span(w, j, w->stride_x, l->w, &x0, &x1);
                    float best = -FLT_MAX;
                    for (int x = x0; x < x1; x++) best = row[x] > best ? row[x] : best;
                    out[i * l->out_w + j] = best;
                }
            }
        }
}

static void forward(dn_layer *l, dn_network *net, const float *in)
{
    (void)net;
    maxpool *p = l->p;
    if (p->depth) {
        forward_depth(l, p, in);
        return;
    }
    if (!p->argmax && l->w <= 1 << 14) { /* the row buffer lives on the stack */
        forward_separable(l, &p->win, in);
        return;
    }
    const dn_pool *w = &p->win;
    #pragma omp parallel for collapse(2)
    for (int b = 0; b < l->batch; b++)
        for (int k = 0; k < l->c; k++) {
            const float *plane = in + ((size_t)b * l->c + k) * l->h * l->w;
            for (int i = 0; i < l->out_h; i++)
                for (int j = 0; j < l->out_w; j++) {
                    float best = -FLT_MAX;
                    int arg = -1;
                    int y0, y1, x0, x1;
                    dn_pool_span(w, i, w->stride_y, l->h, &y0, &y1);
                    dn_pool_span(w, j, w->stride_x, l->w, &x0, &x1);
                    for (int y = y0; y < y1; y++)
                        for (int x = x0; x < x1; x++) {
                            float v = plane[y * l->w + x];
                            if (v > best) { best = v; arg = y * l->w + x; }
                        }
                    size_t o = (((size_t)b * l->c + k) * l->out_h + i) * l->out_w + j;
                    l->output[o] = best;
                    if (p->argmax) p->argmax[o] = arg < 0 ? -1 : (int)(((size_t)b * l->c + k) * l->h * l->w) + arg;
                }
        }
}

static void backward(dn_layer *l, dn_network *net, const float *in, float *in_delta)
{
    (void)net;
    (void)in;
    maxpool *p = l->p;
    if (!in_delta) return;
    for (size_t i = 0; i < (size_t)l->batch * l->outputs; i++)
        if (p->argmax[i] >= 0) in_delta[p->argmax[i]] += l->delta[i];
}

static void describe(const dn_layer *l, char *buf, size_t n)
{
    const maxpool *p = l->p;
    if (p->depth)
        snprintf(buf, n, "max-depth         %2dx%2d/%2d   %4d x%4d x%4d -> %4d x%4d x%4d %5.3f BF", p->win.size,
                 p->win.size, p->win.stride_x, l->w, l->h, l->c, l->out_w, l->out_h, l->out_c, l->bflops);
    else
        dn_pool_describe(l, &p->win, "max", buf, n);
}

static void free_maxpool(dn_layer *l)
{
    maxpool *p = l->p;
    if (p) free(p->argmax);
}

const dn_layer_ops dn_layer_maxpool = {
    .name = "maxpool", .alias = "max", .parse = parse, .forward = forward, .backward = backward,
    .describe = describe, .free = free_maxpool,
};
