/* [reorg] (old reorg, YOLOv2; spec §1.1): upstream's reorg_cpu with its index formula.
   Not a true space-to-depth: forward reads the input (c, h, w) as if it were
   (c/s^2, h*s, w*s) and writes it in (c, h, w) order, which the next layer reads as
   (c*s^2, h/s, w/s) (reverse=1 does the opposite permutation). Weights trained upstream
   expect exactly this order. Written from the formula; no upstream output was
   available to compare against. */
#include "dn.h"

typedef struct reorg {
    int stride, reverse;
} reorg;

static dn_status parse(dn_layer *l, dn_parse_ctx *ctx)
{
    reorg *p = calloc(1, sizeof *p);
    if (!(l->p = p)) return dn_fail(DN_ERR_OOM, "out of memory");
    DN_TRY(dn_require_image(ctx, l));
    const int s = p->stride = dn_opt_int(ctx, "stride", 1);
    p->reverse = dn_opt_int(ctx, "reverse", 0) != 0;
    static const char *const ignored[] = {"flatten", "extra", NULL};
    dn_opt_accept(ctx, ignored);
    if (s < 1 || (double)l->c * s * s > (1 << 30)) return dn_parse_fail(ctx, "stride=%d must be >= 1", s);
    if (p->reverse) {
        if (l->c % (s * s))
            return dn_parse_fail(ctx, "reverse=1 needs input channels (%d) divisible by stride^2 = %d", l->c, s * s);
        l->out_w = l->w * s;
        l->out_h = l->h * s;
        l->out_c = l->c / (s * s);
    } else {
        if (l->w % s || l->h % s)
            return dn_parse_fail(ctx, "stride=%d must divide the input width and height (%d x %d)", s, l->w, l->h);
        l->out_w = l->w / s;
        l->out_h = l->h / s;
        l->out_c = l->c * s * s;
    }
    l->outputs = l->out_w * l->out_h * l->out_c;
    return DN_OK;
}

/* For position (k, j, i) of a (c, h, w) block: the position in the (c/s^2, h*s, w*s) view. */
static long wide_index(int i, int j, int k, int w, int h, int c, int s)
{
    const int oc = c / (s * s), c2 = k % oc, off = k / oc;
    return (i * s + off % s) + (long)w * s * ((j * s + off / s) + (long)h * s * c2);
}

/* reorg_cpu over the layer's input dims (w, h, c): gather (reverse=0) or scatter (reverse=1),
   accumulating into dst when add is set (backward). */
static void permute(const dn_layer *l, const float *src, float *dst, int scatter, int add)
{
    const reorg *p = l->p;
    const int w = l->w, h = l->h, c = l->c, s = p->stride;
    const long per = (long)w * h * c;
    #pragma omp parallel for collapse(2)
    for (int b = 0; b < l->batch; b++)
        for (int k = 0; k < c; k++)
            for (int j = 0; j < h; j++)
                for (int i = 0; i < w; i++) {
                    const long near = b * per + i + (long)w * (j + (long)h * k);
                    const long wide = b * per + wide_index(i, j, k, w, h, c, s);
                    const long to = scatter ? wide : near, from = scatter ? near : wide;
                    if (add) dst[to] += src[from];
                    else dst[to] = src[from];
                }
}

static void forward(dn_layer *l, dn_network *net, const float *in)
{
    (void)net;
    permute(l, in, l->output, ((const reorg *)l->p)->reverse, 0);
}

static void backward(dn_layer *l, dn_network *net, const float *in, float *in_delta)
{
    (void)net;
    (void)in;
    if (in_delta) permute(l, l->delta, in_delta, !((const reorg *)l->p)->reverse, 1);
}

static void describe(const dn_layer *l, char *buf, size_t n)
{
    snprintf(buf, n, "reorg_old              / %d  %4d x%4d x%4d   ->  %4d x%4d x%4d",
             ((const reorg *)l->p)->stride, l->w, l->h, l->c, l->out_w, l->out_h, l->out_c);
}

const dn_layer_ops dn_layer_reorg = {
    .name = "reorg", .parse = parse, .forward = forward, .backward = backward, .describe = describe,
};
