/* [activation] (spec §1.5, §3.9, §4.3): y = act(x), shape unchanged. */
#include <string.h>

#include "layer_activation.h"

static dn_status parse(dn_layer *l, dn_parse_ctx *ctx)
{
    activation *p = calloc(1, sizeof *p);
    if (!(l->p = p)) return dn_fail(DN_ERR_OOM, "out of memory");
    DN_TRY(dn_opt_activation(ctx, "activation", "linear", &p->act));
    l->out_w = l->w;
    l->out_h = l->h;
    l->out_c = l->c;
    l->outputs = l->inputs;
    if (l->c > 0 && (long)l->w * l->h * l->c == l->inputs) {
        p->c = l->c;
        p->spatial = l->w * l->h;
    } else { /* a flat vector (after connected/softmax): one pixel of `inputs` channels */
        p->c = l->inputs;
        p->spatial = 1;
    }
    return DN_OK;
}

static void describe(const dn_layer *l, char *buf, size_t n) { snprintf(buf, n, "Activation Layer: %d inputs", l->inputs); }

static void attrs(const dn_layer *l, dn_attrs *a)
{
    dn_attr_str(a, "activation", dn_act_name(((const activation *)l->p)->act));
}

const dn_layer_ops dn_layer_activation = {
    .name = "activation", .parse = parse, .describe = describe, .attrs = attrs,
};
