/* [cost] on CUDA: the error and delta in one kernel, the sum read back for the loss. */
#include "../layer_cost.h"
#include "cuda.h"

static dn_status forward(dn_layer *l, const dn_tensor *const *in, dn_tensor *out, dn_ctx *ctx)
{
    const cost *p = l->p;
    DN_TRY(ctx->backend->zero(out, 0, out->n)); /* darknet's [cost] output: its memory may have held others */
    if (!ctx->training || !ctx->truth.data) return DN_OK;
    dn_cuda_net *s = dn_cuda_of(ctx);
    DN_CUDA_TRY(dn_cuda_cost_loss(in[0]->data, ctx->truth.data, l->delta.data, (size_t)l->batch * l->inputs,
                                  p->type, s->sum, s->stream), "in the cost");
    return dn_cuda_read_sum(s, &l->cost);
}

static dn_status backward(dn_layer *l, const dn_tensor *const *in, dn_tensor *const *in_delta, dn_ctx *ctx)
{
    (void)in;
    const cost *p = l->p;
    if (!in_delta[0]->data) return DN_OK;
    const int total = l->batch * l->inputs;
    DN_CUDA_TRY(dn_cuda_add_prefix(l->delta.data, total, in_delta[0]->data, total, total, 1, p->scale,
                                   dn_cuda_of(ctx)->stream), "in the cost's backward");
    return DN_OK;
}

const dn_kernels dn_cuda_kernels_cost = {.forward = forward, .backward = backward};
