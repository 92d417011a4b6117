/* [route] on CUDA: each input's group slice copied into place, one 2-D copy per input;
   backward adds the slices of the delta back. */
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

static dn_status backward(dn_layer *l, const dn_tensor *const *in, dn_tensor *const *in_delta, dn_ctx *ctx)
{
    const route *p = l->p;
    size_t offset = 0;
    for (int i = 0; i < l->n_in; i++) {
        const size_t total = in[i]->n / l->batch, part = total / p->groups;
        if (in_delta[i]->data)
            DN_CUDA_TRY(dn_cuda_add_prefix(l->delta.data + offset, l->outputs,
                                           in_delta[i]->data + (size_t)p->group_id * part, (int)total, (int)part,
                                           l->batch, 1.f, dn_cuda_of(ctx)->stream), "in route's backward");
        offset += part;
    }
    return DN_OK;
}

const dn_kernels dn_cuda_kernels_route = {.forward = forward, .backward = backward};
