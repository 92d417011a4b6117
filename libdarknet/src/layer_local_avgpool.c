/* [local_avgpool] (spec §1.5, §3.5, §4.3): mean over the in-image window positions. */
#include "dn.h"

static dn_status parse(dn_layer *l, dn_parse_ctx *ctx)
{
    dn_pool *p = calloc(1, sizeof *p);
    if (!(l->p = p)) return dn_fail(DN_ERR_OOM, "out of memory");
    return dn_pool_parse(l, ctx, p);
}

static void describe(const dn_layer *l, char *buf, size_t n) { dn_pool_describe(l, l->p, "avg", buf, n); }

static void attrs(const dn_layer *l, dn_attrs *a)
{
    const dn_pool *p = l->p;
    dn_attr_int(a, "size", p->size);
    dn_attr_int(a, "stride_x", p->stride_x);
    dn_attr_int(a, "stride_y", p->stride_y);
    dn_attr_int(a, "padding", p->padding);
}

const dn_layer_ops dn_layer_local_avgpool = {
    .name = "local_avgpool", .alias = "local_avg", .parse = parse,
    .describe = describe, .attrs = attrs,
};
