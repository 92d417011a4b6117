/* [local_avgpool] (spec §1.5, §3.5, §4.3): mean over the in-image window positions. */
#include "dn.h"

static dn_status parse(dn_layer *l, dn_parse_ctx *ctx)
{
    dn_pool *p = calloc(1, sizeof *p);
    if (!(l->p = p)) return dn_fail(DN_ERR_OOM, "out of memory");
    return dn_pool_parse(l, ctx, p);
}

static void describe(const dn_layer *l, char *buf, size_t n) { dn_pool_describe(l, l->p, "avg", buf, n); }

const dn_layer_ops dn_layer_local_avgpool = {
    .name = "local_avgpool", .alias = "local_avg", .parse = parse,
    .describe = describe,
};
