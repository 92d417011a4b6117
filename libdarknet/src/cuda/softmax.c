/* [softmax] on CUDA (inference: no cost). */
#include "../layer_softmax.h"
#include "cuda.h"

static dn_status forward(dn_layer *l, const dn_tensor *const *in, dn_tensor *out, dn_ctx *ctx)
{
    const softmax *p = l->p;
    DN_CUDA_TRY(dn_cuda_softmax(in[0]->data, out->data, l->batch * p->groups, l->inputs / p->groups,
                                p->temperature, dn_cuda_of(ctx)->stream), "in softmax");
    return DN_OK;
}

const dn_kernels dn_cuda_kernels_softmax = {.forward = forward};
