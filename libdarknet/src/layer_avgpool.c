/* [avgpool] (spec §1.5, §3.5, §4.3): global average over each channel. */

#include "dn.h"

static dn_status parse(dn_layer *l, dn_parse_ctx *ctx)
{
    DN_TRY(dn_require_image(ctx, l));
    l->out_w = l->out_h = 1;
    l->out_c = l->c;
    l->outputs = l->c;
    return DN_OK;
}

static void describe(const dn_layer *l, char *buf, size_t n)
{
    snprintf(buf, n, "avg                          %4d x%4d x%4d ->   %4d", l->w, l->h, l->c, l->outputs);
}

const dn_layer_ops dn_layer_avgpool = {
    .name = "avgpool", .alias = "avg", .parse = parse,
    .describe = describe,
};
