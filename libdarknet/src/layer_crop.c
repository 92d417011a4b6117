/* [crop] (upstream's crop_layer.c), inference: the centre crop_height x crop_width window of
   every channel (offsets floor((h - crop_height) / 2), floor((w - crop_width) / 2)), mapped
   to [-1, 1] as 2x - 1 unless noadjust=1. The random offsets, flips and colour changes it
   makes in training are not implemented: a training network is refused. */
#include "layer_crop.h"

/* Augmentation options: upstream's CPU forward reads only flip, and only in training. */
static const char *const augmentation[] = {"flip", "angle", "saturation", "exposure", "shift", NULL};

static dn_status parse(dn_layer *l, dn_parse_ctx *ctx)
{
    crop *p = calloc(1, sizeof *p);
    if (!(l->p = p)) return dn_fail(DN_ERR_OOM, "out of memory");
    DN_TRY(dn_require_image(ctx, l));
    const int ch = dn_opt_int(ctx, "crop_height", 1), cw = dn_opt_int(ctx, "crop_width", 1);
    p->noadjust = dn_opt_int(ctx, "noadjust", 0) != 0;
    dn_opt_accept(ctx, augmentation);
    if (ctx->train)
        return dn_parse_fail(ctx, "training through a [crop] layer (random crops and flips) is not supported; build "
                             "the network for inference, or remove [crop] and crop the images beforehand");
    if (ch < 1 || cw < 1 || ch > l->h || cw > l->w)
        return dn_parse_fail(ctx, "crop_height=%d and crop_width=%d must be between 1 and the input size %d x %d",
                             ch, cw, l->h, l->w);
    l->out_h = ch;
    l->out_w = cw;
    l->out_c = l->c;
    l->outputs = cw * ch * l->c;
    return DN_OK;
}

static void describe(const dn_layer *l, char *buf, size_t n)
{
    snprintf(buf, n, "Crop Layer: %d x %d -> %d x %d x %d image", l->h, l->w, l->out_h, l->out_w, l->c);
}

static void attrs(const dn_layer *l, dn_attrs *a)
{
    dn_attr_int(a, "crop_height", l->out_h);
    dn_attr_int(a, "crop_width", l->out_w);
    dn_attr_int(a, "noadjust", ((const crop *)l->p)->noadjust);
}

const dn_layer_ops dn_layer_crop = {
    .name = "crop", .parse = parse, .describe = describe, .attrs = attrs,
};
