/* [connected] on the CPU. */
#include <math.h>
#include <string.h>

#include "../layer_connected.h"
#include "cpu.h"

static dn_status forward(dn_layer *l, const dn_tensor *const *srcs, dn_tensor *out, dn_ctx *ctx)
{
    (void)out;
    const float *in = srcs[0]->data;
    connected *p = l->p;
    dn_gemm(0, 1, l->batch, l->outputs, l->inputs, 1, in, l->inputs, p->weights, l->inputs, 0, l->output.data,
            l->outputs);
    if (l->batch_normalize) dn_bn_forward(&p->bn, l->output.data, l->batch, ctx->training, p->biases, DN_ACT_LINEAR);
    else dn_add_bias(l->output.data, p->biases, l->batch, l->outputs, 1);
    if (ctx->training && p->preact) memcpy(p->preact, l->output.data, sizeof(float) * l->batch * l->outputs);
    dn_activate(l->output.data, l->batch, l->outputs, 1, p->act);
    return DN_OK;
}

static dn_status backward(dn_layer *l, const dn_tensor *const *srcs, dn_tensor *const *src_deltas, dn_ctx *ctx)
{
    const float *in = srcs[0]->data;
    float *in_delta = src_deltas[0]->data;
    connected *p = l->p;
    dn_activate_grad(p->preact, l->output.data, l->batch, l->outputs, 1, p->act, l->delta.data);
    dn_backward_bias(p->bias_updates, l->delta.data, l->batch, l->outputs, 1);
    if (l->batch_normalize) dn_bn_backward(&p->bn, l->delta.data, l->batch);
    dn_gemm(1, 0, l->outputs, l->inputs, l->batch, 1, l->delta.data, l->outputs, in, l->inputs, 1, p->weight_updates,
            l->inputs);
    if (in_delta)
        dn_gemm(0, 0, l->batch, l->inputs, l->outputs, 1, l->delta.data, l->outputs, p->weights, l->inputs, 1, in_delta,
                l->inputs);
    return DN_OK;
}

static dn_status update(dn_layer *l, const dn_update *u, dn_ctx *ctx)
{
    (void)ctx;
    connected *p = l->p;
    const float lr = u->learning_rate * l->lr_mult;
    dn_sgd(p->weights, p->weight_updates, (size_t)l->outputs * l->inputs, u, lr, 1);
    dn_sgd(p->biases, p->bias_updates, l->outputs, u, lr, 0);
    if (l->batch_normalize) dn_sgd(p->bn.scales, p->bn.scale_updates, l->outputs, u, lr, 0);
    return DN_OK;
}

const dn_kernels DN_CPU(kernels_connected) = {.forward = forward, .backward = backward, .update = update,
                                              .whole_batch = 1};
