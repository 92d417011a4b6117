/* [softmax] on CUDA; in training its cross-entropy cost against the truth (spec §4.2). */
#include "../layer_softmax.h"
#include "cuda.h"

static dn_status forward(dn_layer *l, const dn_tensor *const *in, dn_tensor *out, dn_ctx *ctx)
{
    const softmax *p = l->p;
    dn_cuda_net *s = dn_cuda_of(ctx);
    DN_CUDA_TRY(dn_cuda_softmax(in[0]->data, out->data, l->batch * p->groups, l->inputs / p->groups,
                                p->temperature, s->stream), "in softmax");
    if (!ctx->training || !ctx->truth.data || p->noloss) return DN_OK;
    DN_CUDA_TRY(dn_cuda_softmax_loss(out->data, ctx->truth.data, l->delta.data, (size_t)l->batch * l->outputs,
                                     s->sum, s->stream), "in softmax's cost");
    return dn_cuda_read_sum(s, &l->cost);
}

static dn_status backward(dn_layer *l, const dn_tensor *const *in, dn_tensor *const *in_delta, dn_ctx *ctx)
{
    (void)in;
    if (!in_delta[0]->data) return DN_OK;
    const int total = l->batch * l->outputs;
    DN_CUDA_TRY(dn_cuda_add_prefix(l->delta.data, total, in_delta[0]->data, total, total, 1, 1.f,
                                   dn_cuda_of(ctx)->stream), "in softmax's backward");
    return DN_OK;
}

const dn_kernels dn_cuda_kernels_softmax = {.forward = forward, .backward = backward};
