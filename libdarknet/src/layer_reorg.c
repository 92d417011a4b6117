/* [reorg] (old reorg, YOLOv2; spec §1.1): upstream's reorg_cpu with its index formula.
   Not a true space-to-depth: forward reads the input (c, h, w) as if it were
   (c/s^2, h*s, w*s) and writes it in (c, h, w) order, which the next layer reads as
   (c*s^2, h/s, w/s) (reverse=1 does the opposite permutation). Weights trained upstream
   expect exactly this order. Written from the formula; no upstream output was
   available to compare against. */

#include "layer_reorg.h"

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

static void describe(const dn_layer *l, char *buf, size_t n)
{
    snprintf(buf, n, "reorg_old              / %d  %4d x%4d x%4d   ->  %4d x%4d x%4d",
             ((const reorg *)l->p)->stride, l->w, l->h, l->c, l->out_w, l->out_h, l->out_c);
}

const dn_layer_ops dn_layer_reorg = {
    .name = "reorg", .parse = parse, .describe = describe,
};
