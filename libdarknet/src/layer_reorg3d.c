/* [reorg3d] (spec §1.1 "new reorg"): space-to-depth by `stride` s.
   Output (w/s, h/s, c*s*s). Element order chosen here:
       out[b, (dy*s + dx)*c + ci, y, x] = in[b, ci, y*s + dy, x*s + dx]
   i.e. the s*s sub-pixel offsets are the outer channel blocks, each block holding all
   input channels in order. The spec does not state upstream's order and this has NOT
   been verified against upstream; weights trained upstream behind a reorg3d may
   expect a different channel order. */

#include "layer_reorg3d.h"

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

static void describe(const dn_layer *l, char *buf, size_t n)
{
    snprintf(buf, n, "reorg                    /%2d %4d x%4d x%4d -> %4d x%4d x%4d",
             ((const reorg3d *)l->p)->stride, l->w, l->h, l->c, l->out_w, l->out_h, l->out_c);
}

static void attrs(const dn_layer *l, dn_attrs *a)
{
    dn_attr_int(a, "stride", ((const reorg3d *)l->p)->stride);
}

const dn_layer_ops dn_layer_reorg3d = {
    .name = "reorg3d", .parse = parse, .describe = describe, .attrs = attrs,
};
