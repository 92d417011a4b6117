/* [scale_channels] (spec §1.5, §3.9): the `from` layer's output scaled per channel
   by the current input (1 x 1 x C, scale_wh=0) or per pixel (W x H x 1, scale_wh=1),
   then the activation. The output has the `from` layer's shape. */
#include <string.h>

#include "layer_scale_channels.h"

static dn_status parse(dn_layer *l, dn_parse_ctx *ctx)
{
    scale_channels *p = calloc(1, sizeof *p);
    if (!(l->p = p)) return dn_fail(DN_ERR_OOM, "out of memory");
    if (!dn_opt_str(ctx, "from", NULL))
        return dn_parse_fail(ctx, "from= is required: name the layer whose channels are scaled, e.g. from=-4");
    int ref = dn_opt_int(ctx, "from", 0);
    DN_TRY(dn_opt_layer_ref(ctx, "from", ref, &p->from));
    const int inputs[2] = {ctx->index - 1, p->from};
    DN_TRY(dn_layer_set_inputs(l, inputs, 2));
    DN_TRY(dn_opt_activation(ctx, "activation", "linear", &p->act));
    p->scale_wh = dn_opt_int(ctx, "scale_wh", 0);
    if (p->scale_wh != 0 && p->scale_wh != 1) return dn_parse_fail(ctx, "scale_wh=%d must be 0 or 1", p->scale_wh);
    const dn_layer *s = &ctx->layers[p->from];
    if (s->out_w < 1 || s->out_h < 1 || s->out_c < 1 || s->outputs != s->out_w * s->out_h * s->out_c)
        return dn_parse_fail(ctx, "from=%d (layer %d) must output an image, but its output is %d x %d x %d", ref,
                             p->from, s->out_w, s->out_h, s->out_c);
    if (!p->scale_wh && l->inputs != s->out_c)
        return dn_parse_fail(ctx, "the input has %d values (%d x %d x %d) but needs one scale per channel of from=%d "
                             "(layer %d, %d x %d x %d): expected 1 x 1 x %d",
                             l->inputs, l->w, l->h, l->c, ref, p->from, s->out_w, s->out_h, s->out_c, s->out_c);
    if (p->scale_wh && l->inputs != s->out_w * s->out_h)
        return dn_parse_fail(ctx, "with scale_wh=1 the input must hold one scale per pixel of from=%d (layer %d, "
                             "%d x %d x %d): expected %d x %d x 1, got %d x %d x %d",
                             ref, p->from, s->out_w, s->out_h, s->out_c, s->out_w, s->out_h, l->w, l->h, l->c);
    l->out_w = s->out_w;
    l->out_h = s->out_h;
    l->out_c = s->out_c;
    l->outputs = s->outputs;
    if (ctx->train && dn_act_needs_input(p->act))
        DN_TRY(dn_alloc_floats(&p->preact, (size_t)l->batch * l->outputs, "pre-activations"));
    return DN_OK;
}

static void describe(const dn_layer *l, char *buf, size_t n)
{
    snprintf(buf, n, "scale Layer: %d", ((const scale_channels *)l->p)->from);
}

static void free_scale_channels(dn_layer *l)
{
    scale_channels *p = l->p;
    if (p) free(p->preact);
}

static void attrs(const dn_layer *l, dn_attrs *a)
{
    const scale_channels *p = l->p;
    dn_attr_int(a, "scale_wh", p->scale_wh);
    dn_attr_str(a, "activation", dn_act_name(p->act));
}

const dn_layer_ops dn_layer_scale_channels = {
    .name = "scale_channels", .parse = parse, .describe = describe, .attrs = attrs,
    .free = free_scale_channels,
};
