/* [reorg3d] (spec §1.1 "new reorg"): space-to-depth by `stride` s.
   Output (w/s, h/s, c*s*s). Element order chosen here:
       out[b, (dy*s + dx)*c + ci, y, x] = in[b, ci, y*s + dy, x*s + dx]
   i.e. the s*s sub-pixel offsets are the outer channel blocks, each block holding all
   input channels in order. The spec does not state upstream's order and this has NOT
   been verified against upstream; weights trained upstream behind a reorg3d may
   expect a different channel order. */
#include "dn.h"

typedef struct reorg3d {
    int stride;
} reorg3d;

static dn_status parse(dn_layer *l, dn_parse_ctx *ctx)
{
    reorg3d *p = calloc(1, sizeof *p);
    if (!(l->p = p)) return dn_fail(DN_ERR_OOM, "out of memory");
    DN_TRY(dn_require_image(ctx, l));
    const int s = p->stride = dn_opt_int(ctx, "stride", 2);
    if (s < 1) return dn_parse_fail(ctx, "stride=%d must be >= 1", s);
    if (l->w % s || l->h % s)
        return dn_parse_fail(ctx, "stride=%d must divide the input width and height (%d x %d)", s, l->w, l->h);
    if ((double)l->c * s * s > (1 << 30)) return dn_parse_fail(ctx, "stride=%d is too large", s);
    l->out_w = l->w / s;
    l->out_h = l->h / s;
    l->out_c = l->c * s * s;
    l->outputs = l->out_w * l->out_h * l->out_c;
    return DN_OK;
}

static void forward(dn_layer *l, dn_network *net, const float *in)
{
    (void)net;
    const int s = ((const reorg3d *)l->p)->stride, c = l->c, w = l->w, h = l->h;
    const int ow = l->out_w, oh = l->out_h, oc = l->out_c;
    #pragma omp parallel for collapse(3)
    for (int b = 0; b < l->batch; b++)
        for (int k = 0; k < oc; k++)
            for (int y = 0; y < oh; y++) {
                const int off = k / c, ci = k % c, dy = off / s, dx = off % s;
                const float *src = in + (((long)b * c + ci) * h + (long)y * s + dy) * w + dx;
                float *dst = l->output + (((long)b * oc + k) * oh + y) * ow;
                for (int x = 0; x < ow; x++) dst[x] = src[(long)x * s];
            }
}

/* The inverse permutation, accumulated: in.delta[b, ci, y*s+dy, x*s+dx] += delta[b, (dy*s+dx)*c+ci, y, x]. */
static void backward(dn_layer *l, dn_network *net, const float *in, float *in_delta)
{
    (void)net;
    (void)in;
    if (!in_delta) return;
    const int s = ((const reorg3d *)l->p)->stride, c = l->c, w = l->w, h = l->h;
    const int ow = l->out_w, oh = l->out_h, oc = l->out_c;
    #pragma omp parallel for collapse(3)
    for (int b = 0; b < l->batch; b++)
        for (int k = 0; k < oc; k++)
            for (int y = 0; y < oh; y++) {
                const int off = k / c, ci = k % c, dy = off / s, dx = off % s;
                float *dst = in_delta + (((long)b * c + ci) * h + (long)y * s + dy) * w + dx;
                const float *d = l->delta + (((long)b * oc + k) * oh + y) * ow;
                for (int x = 0; x < ow; x++) dst[(long)x * s] += d[x];
            }
}

static void describe(const dn_layer *l, char *buf, size_t n)
{
    snprintf(buf, n, "reorg                    /%2d %4d x%4d x%4d -> %4d x%4d x%4d",
             ((const reorg3d *)l->p)->stride, l->w, l->h, l->c, l->out_w, l->out_h, l->out_c);
}

const dn_layer_ops dn_layer_reorg3d = {
    .name = "reorg3d", .parse = parse, .forward = forward, .backward = backward, .describe = describe,
};
