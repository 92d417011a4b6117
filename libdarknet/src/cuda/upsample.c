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

const dn_kernels dn_cuda_kernels_upsample = {.forward = forward};
