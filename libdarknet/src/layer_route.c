/* [route] (spec §1.5, §3.9, §4.3): per sample, the concatenation of the listed
   layers' outputs in list order; with groups=g, group_id=j only the j-th of g
   contiguous slices of each listed layer's output is taken. */
#include <string.h>

#include "layer_route.h"

static dn_status parse(dn_layer *l, dn_parse_ctx *ctx)
{
    route *p = calloc(1, sizeof *p);
    if (!(l->p = p)) return dn_fail(DN_ERR_OOM, "out of memory");
    const char *list = dn_opt_str(ctx, "layers", NULL);
    if (!list)
        return dn_parse_fail(ctx, "layers= is required: list the layers to concatenate, e.g. layers=-1,61 "
                             "(negative values count back from this layer)");
    int cap = 1;
    for (const char *s = list; *s; s++) cap += *s == ',';
    if (cap > MAX_SOURCES) return dn_parse_fail(ctx, "layers= lists more than %d layers", MAX_SOURCES);
    int refs[MAX_SOURCES];
    int n = dn_opt_ints(ctx, "layers", refs, cap);
    if (n < 0) return DN_ERR_CFG;
    if (n == 0) return dn_parse_fail(ctx, "layers=%s lists no layer; give at least one layer index", list);
    for (int i = 0; i < n; i++) DN_TRY(dn_opt_layer_ref(ctx, "layers", refs[i], &refs[i]));
    DN_TRY(dn_layer_set_inputs(l, refs, n));

    p->groups = dn_opt_int(ctx, "groups", 1);
    p->group_id = dn_opt_int(ctx, "group_id", 0);
    if (p->groups < 1) return dn_parse_fail(ctx, "groups=%d must be >= 1", p->groups);
    if (p->group_id < 0 || p->group_id >= p->groups)
        return dn_parse_fail(ctx, "group_id=%d must be between 0 and groups-1 = %d", p->group_id, p->groups - 1);

    const dn_layer *first = &ctx->layers[l->in_idx[0]];
    long sum_c = 0, sum_out = 0;
    for (int i = 0; i < n; i++) {
        const dn_layer *s = &ctx->layers[l->in_idx[i]];
        if (s->out_w != first->out_w || s->out_h != first->out_h)
            return dn_parse_fail(ctx, "the routed layers have different widths/heights: layer %d outputs %d x %d x %d "
                                 "(w x h x c) but layer %d outputs %d x %d x %d; all layers in layers= must have the "
                                 "same width and height",
                                 l->in_idx[0], first->out_w, first->out_h, first->out_c, l->in_idx[i], s->out_w, s->out_h,
                                 s->out_c);
        if (s->outputs % p->groups || (s->out_c > 0 && s->out_c % p->groups))
            return dn_parse_fail(ctx, "groups=%d does not divide the %d channels (%d values) of layer %d", p->groups,
                                 s->out_c, s->outputs, l->in_idx[i]);
        sum_c += s->out_c;
        sum_out += s->outputs;
    }
    if (sum_out / p->groups > (1L << 30)) return dn_parse_fail(ctx, "the concatenation is too large");
    l->out_w = first->out_w;
    l->out_h = first->out_h;
    l->out_c = (int)(sum_c / p->groups);
    l->outputs = (int)(sum_out / p->groups);
    l->bflops = 0;
    return DN_OK;
}

static void describe(const dn_layer *l, char *buf, size_t n)
{
    const route *p = l->p;
    size_t pos = 0;
    if (n) buf[0] = 0;
    dn_appendf(buf, n, &pos, "route ");
    for (int i = 0; i < l->n_in; i++) dn_appendf(buf, n, &pos, " %d", l->in_idx[i]);
    dn_appendf(buf, n, &pos, "%s", l->n_in > 3 ? " \t    " : l->n_in > 1 ? " \t            " : " \t\t            ");
    dn_appendf(buf, n, &pos, "           ");
    if (p->groups > 1) dn_appendf(buf, n, &pos, "%d/%d", p->group_id, p->groups);
    else dn_appendf(buf, n, &pos, "   ");
    dn_appendf(buf, n, &pos, " -> %4d x%4d x%4d ", l->out_w, l->out_h, l->out_c);
}

static void attrs(const dn_layer *l, dn_attrs *a)
{
    const route *p = l->p;
    dn_attr_int(a, "groups", p->groups);
    dn_attr_int(a, "group_id", p->group_id);
}

const dn_layer_ops dn_layer_route = {
    .name = "route", .parse = parse, .describe = describe, .attrs = attrs,
};
