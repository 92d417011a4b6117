/* [route] on CUDA: each input's group slice copied into place, one 2-D copy per input. */
#include "../layer_route.h"
#include "cuda.h"

static dn_status forward(dn_layer *l, const dn_tensor *const *in, dn_tensor *out, dn_ctx *ctx)
{
    const route *p = l->p;
    size_t offset = 0;
    for (int i = 0; i < l->n_in; i++) {
        const size_t total = in[i]->n / l->batch, part = total / p->groups;
        DN_CUDA_TRY(cudaMemcpy2DAsync(out->data + offset, sizeof(float) * l->outputs,
                                      in[i]->data + (size_t)p->group_id * part, sizeof(float) * total,
                                      sizeof(float) * part, l->batch, cudaMemcpyDeviceToDevice,
                                      dn_cuda_of(ctx)->stream), "in route");
        offset += part;
    }
    return DN_OK;
}

const dn_kernels dn_cuda_kernels_route = {.forward = forward};
