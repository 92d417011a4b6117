/* [cost] on the CPU. */
#include <math.h>
#include <string.h>

#include "../layer_cost.h"
#include "cpu.h"

static dn_status forward(dn_layer *l, const dn_tensor *const *srcs, dn_tensor *out, dn_ctx *ctx)
{
    const float *in = srcs[0]->data;
    const cost *p = l->p;
    memset(out->data, 0, sizeof(float) * out->n); /* darknet's [cost] output: its memory may have held others */
    if (!ctx->training || !ctx->truth.data) return DN_OK;
    double total = 0;
    for (int i = 0; i < l->batch * l->inputs; i++) {
        const float t = ctx->truth.data[i];
        float x = in[i];
        if (p->type == COST_MASKED && t == -1234) x = t;
        const float d = t - x;
        float err = d * d, delta = d;
        if (p->type == COST_SMOOTH && fabsf(d) >= 1) {
            err = 2 * fabsf(d) - 1;
            delta = d > 0 ? 1 : -1;
        }
        l->delta.data[i] = delta;
        total += err;
    }
    l->cost = total;
    return DN_OK;
}

static dn_status backward(dn_layer *l, const dn_tensor *const *srcs, dn_tensor *const *src_deltas, dn_ctx *ctx)
{
    float *in_delta = src_deltas[0]->data;
    const cost *p = l->p;
    if (!in_delta) return DN_OK;
    for (int i = 0; i < l->batch * l->inputs; i++) in_delta[i] += p->scale * l->delta.data[i];
    return DN_OK;
}

const dn_kernels DN_CPU(kernels_cost) = {.forward = forward, .backward = backward};
