/* [upsample] (spec §1.5, §3.9, §4.3): nearest-neighbour up-sampling by `stride`,
   times `scale`; a negative stride -k down-samples by summing k x k blocks. */

#include "layer_upsample.h"

static dn_status parse(dn_layer *l, dn_parse_ctx *ctx)
{
    upsample *p = calloc(1, sizeof *p);
    if (!(l->p = p)) return dn_fail(DN_ERR_OOM, "out of memory");
    DN_TRY(dn_require_image(ctx, l));
    int stride = dn_opt_int(ctx, "stride", 2);
    p->scale = dn_opt_float(ctx, "scale", 1);
    if (stride == 0)
        return dn_parse_fail(ctx, "stride=0 is invalid: use a positive factor to up-sample or a negative one to "
                             "down-sample");
    p->down = stride < 0;
    p->k = stride < 0 ? -stride : stride;
    if (p->down) {
        l->out_w = l->w / p->k;
        l->out_h = l->h / p->k;
        if (l->out_w < 1 || l->out_h < 1)
            return dn_parse_fail(ctx, "stride=%d down-samples the %d x %d input to nothing", stride, l->w, l->h);
    } else {
        if ((double)l->w * p->k * l->h * p->k * l->c > (1 << 30))
            return dn_parse_fail(ctx, "stride=%d makes the output too large", stride);
        l->out_w = l->w * p->k;
        l->out_h = l->h * p->k;
    }
    l->out_c = l->c;
    l->outputs = l->out_w * l->out_h * l->out_c;
    return DN_OK;
}

static void describe(const dn_layer *l, char *buf, size_t n)
{
    const upsample *p = l->p;
    snprintf(buf, n, "%s%2dx  %4d x%4d x%4d -> %4d x%4d x%4d",
             p->down ? "downsample              " : "upsample                ", p->k, l->w, l->h, l->c, l->out_w,
             l->out_h, l->out_c);
}

static void attrs(const dn_layer *l, dn_attrs *a)
{
    const upsample *p = l->p;
    dn_attr_int(a, "stride", p->down ? -p->k : p->k);
    dn_attr_float(a, "scale", p->scale);
}

const dn_layer_ops dn_layer_upsample = {
    .name = "upsample", .parse = parse, .describe = describe, .attrs = attrs,
};
