/* [cost] (spec §1.5, §4.2, §4.3): a no-op at inference; with truth, the
   sse/masked/smooth cost of its input and delta = t - x. */
#include <math.h>
#include <string.h>

#include "layer_cost.h"

static const char *const ignored_keys[] = {"ratio", NULL};

static dn_status parse(dn_layer *l, dn_parse_ctx *ctx)
{
    cost *p = calloc(1, sizeof *p);
    if (!(l->p = p)) return dn_fail(DN_ERR_OOM, "out of memory");
    dn_opt_accept(ctx, ignored_keys);
    const char *type = dn_opt_str(ctx, "type", "sse");
    if (strcmp(type, "sse") == 0) p->type = COST_SSE;
    else if (strcmp(type, "masked") == 0) p->type = COST_MASKED;
    else if (strcmp(type, "smooth") == 0) p->type = COST_SMOOTH;
    else return dn_parse_fail(ctx, "unknown cost type '%s'; use sse, masked or smooth", type);
    p->scale = dn_opt_float(ctx, "scale", 1);
    l->outputs = l->inputs;
    l->has_cost = 1;
    return DN_OK;
}

static void describe(const dn_layer *l, char *buf, size_t n)
{
    snprintf(buf, n, "cost                                           %4d", l->outputs);
}

static void attrs(const dn_layer *l, dn_attrs *a)
{
    static const char *const types[] = {"sse", "masked", "smooth"};
    const cost *p = l->p;
    dn_attr_str(a, "type", types[p->type]);
    dn_attr_float(a, "scale", p->scale);
}

const dn_layer_ops dn_layer_cost = {
    .name = "cost", .parse = parse, .describe = describe, .attrs = attrs,
};
