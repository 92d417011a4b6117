/* [maxpool] on CUDA. No argmax is stored: backward finds each window's maximum again in the
   input, which a training network keeps. */
#include "../layer_maxpool.h"
#include "cuda.h"

static dn_status forward(dn_layer *l, const dn_tensor *const *in, dn_tensor *out, dn_ctx *ctx)
{
    const maxpool *p = l->p;
    cudaStream_t s = dn_cuda_of(ctx)->stream;
    if (p->depth)
        DN_CUDA_TRY(dn_cuda_maxpool_depth(in[0]->data, out->data, l->batch, l->c, l->w * l->h, l->out_c, s),
                    "in maxpool");
    else
        DN_CUDA_TRY(dn_cuda_maxpool(in[0]->data, out->data, l->batch * l->c, l->h, l->w, l->out_h, l->out_w,
                                    p->win.size, p->win.stride_x, p->win.stride_y, p->win.padding, s),
                    "in maxpool");
    return DN_OK;
}

static dn_status backward(dn_layer *l, const dn_tensor *const *in, dn_tensor *const *in_delta, dn_ctx *ctx)
{
    const maxpool *p = l->p;
    cudaStream_t s = dn_cuda_of(ctx)->stream;
    if (!in_delta[0]->data) return DN_OK;
    if (p->depth)
        DN_CUDA_TRY(dn_cuda_maxpool_depth_backward(in[0]->data, l->delta.data, in_delta[0]->data, l->batch, l->c,
                                                   l->w * l->h, l->out_c, s), "in maxpool's backward");
    else
        DN_CUDA_TRY(dn_cuda_maxpool_backward(in[0]->data, l->delta.data, in_delta[0]->data, l->batch * l->c, l->h,
                                             l->w, l->out_h, l->out_w, p->win.size, p->win.stride_x,
                                             p->win.stride_y, p->win.padding, s), "in maxpool's backward");
    return DN_OK;
}

const dn_kernels dn_cuda_kernels_maxpool = {.forward = forward, .backward = backward};
