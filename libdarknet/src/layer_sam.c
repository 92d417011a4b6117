/* [sam] (spec §1.5, §3.9): spatial attention, y = act(in * from) element-wise.
   The input and the `from` layer's output have the same shape, which is the output's. */
#include <string.h>

#include "layer_sam.h"

static dn_status parse(dn_layer *l, dn_parse_ctx *ctx)
{
    sam *p = calloc(1, sizeof *p);
    if (!(l->p = p)) return dn_fail(DN_ERR_OOM, "out of memory");
    if (!dn_opt_str(ctx, "from", NULL))
        return dn_parse_fail(ctx, "from= is required: name the layer to multiply the input with, e.g. from=-2");
    int ref = dn_opt_int(ctx, "from", 0);
    DN_TRY(dn_opt_layer_ref(ctx, "from", ref, &p->from));
    DN_TRY(dn_opt_activation(ctx, "activation", "linear", &p->act));
    const int inputs[2] = {ctx->index - 1, p->from};
    DN_TRY(dn_layer_set_inputs(l, inputs, 2));
    const dn_layer *s = &ctx->layers[p->from];
    if (s->out_w < 1 || s->out_h < 1 || s->out_c < 1 || s->outputs != s->out_w * s->out_h * s->out_c)
        return dn_parse_fail(ctx, "from=%d (layer %d) must output an image, but its output is %d x %d x %d", ref,
                             p->from, s->out_w, s->out_h, s->out_c);
    if (l->inputs != s->outputs || (l->w && (l->w != s->out_w || l->h != s->out_h || l->c != s->out_c)))
        return dn_parse_fail(ctx, "the input (%d x %d x %d) and from=%d (layer %d, %d x %d x %d) must have the same "
                             "shape", l->w, l->h, l->c, ref, p->from, s->out_w, s->out_h, s->out_c);
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
    snprintf(buf, n, "scale Layer: %d", ((const sam *)l->p)->from);
}

static void free_sam(dn_layer *l)
{
    sam *p = l->p;
    if (p) free(p->preact);
}

static void attrs(const dn_layer *l, dn_attrs *a)
{
    dn_attr_str(a, "activation", dn_act_name(((const sam *)l->p)->act));
}

const dn_layer_ops dn_layer_sam = {
    .name = "sam", .parse = parse, .describe = describe, .attrs = attrs,
    .free = free_sam,
};
