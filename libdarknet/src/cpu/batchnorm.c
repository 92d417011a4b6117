/* [batchnorm] on the CPU. */
#include <string.h>

#include "../layer_batchnorm.h"
#include "cpu.h"

static dn_status forward(dn_layer *l, const dn_tensor *const *srcs, dn_tensor *out, dn_ctx *ctx)
{
    (void)out;
    const float *in = srcs[0]->data;
    batchnorm *p = l->p;
    memcpy(l->output.data, in, sizeof(float) * l->batch * l->outputs);
    dn_bn_forward(&p->bn, l->output.data, l->batch, ctx->training, p->biases, DN_ACT_LINEAR);
    return DN_OK;
}

static dn_status backward(dn_layer *l, const dn_tensor *const *srcs, dn_tensor *const *src_deltas, dn_ctx *ctx)
{
    float *in_delta = src_deltas[0]->data;
    batchnorm *p = l->p;
    dn_backward_bias(p->bias_updates, l->delta.data, l->batch, l->c, l->w * l->h);
    dn_bn_backward(&p->bn, l->delta.data, l->batch);
    if (in_delta)
        for (int i = 0; i < l->batch * l->outputs; i++) in_delta[i] += l->delta.data[i];
    return DN_OK;
}

static dn_status update(dn_layer *l, const dn_update *u, dn_ctx *ctx)
{
    (void)ctx;
    batchnorm *p = l->p;
    const float lr = u->learning_rate * l->lr_mult;
    dn_sgd(p->biases, p->bias_updates, l->c, u, lr, 0);
    dn_sgd(p->bn.scales, p->bn.scale_updates, l->c, u, lr, 0);
    return DN_OK;
}

const dn_kernels DN_CPU(kernels_batchnorm) = {.forward = forward, .backward = backward, .update = update};
