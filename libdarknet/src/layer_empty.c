/* [empty] / [silence] (spec §1.5): identity, working in place on the previous
   layer's output and delta buffers. */

#include "dn.h"

static dn_status parse(dn_layer *l, dn_parse_ctx *ctx)
{
    (void)ctx;
    l->out_w = l->w;
    l->out_h = l->h;
    l->out_c = l->c;
    l->outputs = l->inputs;
    return DN_OK;
}

static void describe(const dn_layer *l, char *buf, size_t n)
{
    (void)l;
    snprintf(buf, n, "empty ");
}

/* No backward: the delta buffer is the previous layer's, so gradients pass through unchanged. */
const dn_layer_ops dn_layer_empty = {
    .name = "empty", .alias = "silence", .in_place = 1, .parse = parse, .describe = describe,
};
