/* [cost] (spec §1.5, §4.2, §4.3): a no-op at inference; with truth, the
   sse/masked/smooth cost of its input and delta = t - x. */
#include <math.h>
#include <string.h>

#include "dn.h"

typedef enum { COST_SSE, COST_MASKED, COST_SMOOTH } cost_type;

typedef struct cost {
    cost_type type;
    float scale;
} cost;

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

static void forward(dn_layer *l, dn_network *net, const float *in)
{
    const cost *p = l->p;
    if (!net->training || !net->truth) return;
    double total = 0;
    for (int i = 0; i < l->batch * l->inputs; i++) {
        const float t = net->truth[i];
        float x = in[i];
        if (p->type == COST_MASKED && t == -1234) x = t;
        const float d = t - x;
        float err = d * d, delta = d;
        if (p->type == COST_SMOOTH && fabsf(d) >= 1) {
            err = 2 * fabsf(d) - 1;
            delta = d > 0 ? 1 : -1;
        }
        l->delta[i] = delta;
        total += err;
    }
    l->cost = total;
}

static void backward(dn_layer *l, dn_network *net, const float *in, float *in_delta)
{
    (void)net;
    (void)in;
    const cost *p = l->p;
    if (!in_delta) return;
    for (int i = 0; i < l->batch * l->inputs; i++) in_delta[i] += p->scale * l->delta[i];
}

static void describe(const dn_layer *l, char *buf, size_t n)
{
    snprintf(buf, n, "cost                                           %4d", l->outputs);
}

const dn_layer_ops dn_layer_cost = {
    .name = "cost", .parse = parse, .forward = forward, .backward = backward, .describe = describe,
};
