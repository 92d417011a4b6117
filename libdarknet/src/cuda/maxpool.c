/* [maxpool] on CUDA (inference: no argmax is kept). */
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

const dn_kernels dn_cuda_kernels_maxpool = {.forward = forward};
