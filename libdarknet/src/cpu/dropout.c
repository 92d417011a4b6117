/* [dropout] on the CPU. */

#include "../layer_dropout.h"
#include "cpu.h"

static dn_status forward(dn_layer *l, const dn_tensor *const *srcs, dn_tensor *out, dn_ctx *ctx)
{
    (void)out;
    const float *in = srcs[0]->data;
    (void)in; /* in == l->output.data: the layer runs in place */
    dropout *p = l->p;
    if (!ctx->training) return DN_OK;
    const float keep = 1.f / (1.f - p->probability);
    for (int i = 0; i < l->batch * l->inputs; i++) {
        p->rand[i] = dn_rng_uniform(&ctx->rng, 0, 1);
        l->output.data[i] = p->rand[i] < p->probability ? 0 : l->output.data[i] * keep;
    }
    return DN_OK;
}

static dn_status backward(dn_layer *l, const dn_tensor *const *srcs, dn_tensor *const *src_deltas, dn_ctx *ctx)
{
    float *in_delta = src_deltas[0]->data;
    dropout *p = l->p;
    if (!in_delta) return DN_OK;
    const float keep = 1.f / (1.f - p->probability);
    for (int i = 0; i < l->batch * l->inputs; i++) in_delta[i] = p->rand[i] < p->probability ? 0 : in_delta[i] * keep;
    return DN_OK;
}

const dn_kernels DN_CPU(kernels_dropout) = {.forward = forward, .backward = backward};
