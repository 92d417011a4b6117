/* [dropout] (spec §1.5, §4.3): identity at inference; in training it works in
   place on the previous layer's buffers. */

#include "layer_dropout.h"

static const char *const ignored_keys[] = {"dropblock", "dropblock_size_rel", "dropblock_size_abs", NULL};

static dn_status parse(dn_layer *l, dn_parse_ctx *ctx)
{
    dropout *p = calloc(1, sizeof *p);
    if (!(l->p = p)) return dn_fail(DN_ERR_OOM, "out of memory");
    dn_opt_accept(ctx, ignored_keys);
    p->probability = dn_opt_float(ctx, "probability", .2f);
    if (p->probability < 0 || p->probability >= 1)
        return dn_parse_fail(ctx, "probability=%g must be in [0, 1)", p->probability);
    l->out_w = l->w;
    l->out_h = l->h;
    l->out_c = l->c;
    l->outputs = l->inputs;
    /* a layer frozen by stopbackward still drops in a training pass */
    if (ctx->train) DN_TRY(dn_alloc_floats(&p->rand, (size_t)l->batch * l->inputs, "dropout draws"));
    return DN_OK;
}

static void describe(const dn_layer *l, char *buf, size_t n)
{
    const dropout *p = l->p;
    snprintf(buf, n, "dropout    p = %.3f        %4d  ->   %4d", p->probability, l->inputs, l->outputs);
}

static void free_dropout(dn_layer *l)
{
    dropout *p = l->p;
    if (p) free(p->rand);
}

static void attrs(const dn_layer *l, dn_attrs *a)
{
    dn_attr_float(a, "probability", ((const dropout *)l->p)->probability);
}

const dn_layer_ops dn_layer_dropout = {
    .name = "dropout", .in_place = 1, .parse = parse,
    .describe = describe, .attrs = attrs, .free = free_dropout,
};
