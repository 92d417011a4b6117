/* [avgpool] on CUDA. */
#include "cuda.h"

static dn_status forward(dn_layer *l, const dn_tensor *const *in, dn_tensor *out, dn_ctx *ctx)
{
    DN_CUDA_TRY(dn_cuda_avgpool(in[0]->data, out->data, l->batch * l->c, l->w * l->h, dn_cuda_of(ctx)->stream),
                "in avgpool");
    return DN_OK;
}

static dn_status backward(dn_layer *l, const dn_tensor *const *in, dn_tensor *const *in_delta, dn_ctx *ctx)
{
    (void)in;
    if (!in_delta[0]->data) return DN_OK;
    DN_CUDA_TRY(dn_cuda_avgpool_backward(l->delta.data, in_delta[0]->data, l->batch * l->c, l->w * l->h,
                                         dn_cuda_of(ctx)->stream), "in avgpool's backward");
    return DN_OK;
}

const dn_kernels dn_cuda_kernels_avgpool = {.forward = forward, .backward = backward};
