/* [upsample] on CUDA. */
#include "../layer_upsample.h"
#include "cuda.h"

static dn_status forward(dn_layer *l, const dn_tensor *const *in, dn_tensor *out, dn_ctx *ctx)
{
    const upsample *p = l->p;
    DN_CUDA_TRY(dn_cuda_upsample(in[0]->data, out->data, l->batch * l->c, l->h, l->w, p->k, p->down, p->scale,
                                 dn_cuda_of(ctx)->stream), "in upsample");
    return DN_OK;
}

static dn_status backward(dn_layer *l, const dn_tensor *const *in, dn_tensor *const *in_delta, dn_ctx *ctx)
{
    (void)in;
    const upsample *p = l->p;
    if (!in_delta[0]->data) return DN_OK;
    DN_CUDA_TRY(dn_cuda_upsample_backward(l->delta.data, in_delta[0]->data, l->batch * l->c, l->h, l->w, p->k,
                                          p->down, p->scale, dn_cuda_of(ctx)->stream), "in upsample's backward");
    return DN_OK;
}

const dn_kernels dn_cuda_kernels_upsample = {.forward = forward, .backward = backward};
