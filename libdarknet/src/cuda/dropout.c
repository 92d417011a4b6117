/* [dropout] on CUDA, in place. The draws come from the network's generator on the host, in the
   CPU's order, so a seeded network drops the same values on either device. */
#include "../layer_dropout.h"
#include "cuda.h"

static dn_status forward(dn_layer *l, const dn_tensor *const *in, dn_tensor *out, dn_ctx *ctx)
{
    (void)in; /* the output buffer is the input buffer */
    dropout *p = l->p;
    if (!ctx->training) return DN_OK;
    dn_cuda_net *s = dn_cuda_of(ctx);
    dn_cuda_params *dev = dn_cuda_layer_params(s, l->index);
    if (!dev) return dn_fail(DN_ERR_OOM, "out of memory in layer %d", l->index);
    const size_t n = (size_t)l->batch * l->inputs;
    for (size_t i = 0; i < n; i++) p->rand[i] = dn_rng_uniform(&ctx->rng, 0, 1);
    DN_TRY(dn_cuda_put(s, &dev->mask, p->rand, n, "dropout draws"));
    DN_CUDA_TRY(dn_cuda_dropout(out->data, dev->mask.data, n, p->probability, 1.f / (1.f - p->probability),
                                s->stream), "in dropout");
    return DN_OK;
}

static dn_status backward(dn_layer *l, const dn_tensor *const *in, dn_tensor *const *in_delta, dn_ctx *ctx)
{
    (void)in;
    const dropout *p = l->p;
    dn_cuda_net *s = dn_cuda_of(ctx);
    if (!in_delta[0]->data || l->index >= s->n_params || !s->params[l->index].mask.data) return DN_OK;
    DN_CUDA_TRY(dn_cuda_dropout(in_delta[0]->data, s->params[l->index].mask.data, (size_t)l->batch * l->inputs,
                                p->probability, 1.f / (1.f - p->probability), s->stream), "in dropout's backward");
    return DN_OK;
}

const dn_kernels dn_cuda_kernels_dropout = {.forward = forward, .backward = backward};
