/* [softmax] (spec §1.5, §3.7, §4.2, §4.3): softmax over blocks of the flat
   vector; with truth, cross-entropy cost and delta = t - p. */
#include <math.h>

#include "layer_softmax.h"

static const char *const ignored_keys[] = {"spatial", NULL};

static dn_status parse(dn_layer *l, dn_parse_ctx *ctx)
{
    softmax *p = calloc(1, sizeof *p);
    if (!(l->p = p)) return dn_fail(DN_ERR_OOM, "out of memory");
    if (dn_opt_str(ctx, "tree", NULL))
        return dn_parse_fail(ctx, "hierarchical softmax (tree=) is not supported");
    dn_opt_accept(ctx, ignored_keys);
    p->groups = dn_opt_int(ctx, "groups", 1);
    p->temperature = dn_opt_float(ctx, "temperature", 1);
    p->noloss = dn_opt_int(ctx, "noloss", 0);
    if (p->groups < 1 || l->inputs % p->groups)
        return dn_parse_fail(ctx, "groups=%d must be >= 1 and divide the %d inputs", p->groups, l->inputs);
    if (p->temperature == 0) return dn_parse_fail(ctx, "temperature must not be 0");
    l->outputs = l->inputs; /* out_w/out_h/out_c stay 0 (spec §1.2) */
    l->has_cost = !p->noloss;
    return DN_OK;
}

static void describe(const dn_layer *l, char *buf, size_t n)
{
    snprintf(buf, n, "softmax                                        %4d", l->outputs);
}

static void attrs(const dn_layer *l, dn_attrs *a)
{
    const softmax *p = l->p;
    dn_attr_int(a, "groups", p->groups);
    dn_attr_float(a, "temperature", p->temperature);
}

const dn_layer_ops dn_layer_softmax = {
    .name = "softmax", .alias = "soft", .parse = parse,
    .describe = describe, .attrs = attrs,
};
