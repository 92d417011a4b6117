/* [activation] on CUDA. */
#include "../layer_activation.h"
#include "cuda.h"

static dn_status forward(dn_layer *l, const dn_tensor *const *in, dn_tensor *out, dn_ctx *ctx)
{
    const activation *p = l->p;
    cudaStream_t s = dn_cuda_of(ctx)->stream;
    DN_CUDA_TRY(cudaMemcpyAsync(out->data, in[0]->data, sizeof(float) * l->batch * l->outputs,
                                cudaMemcpyDeviceToDevice, s), "in activation");
    DN_CUDA_TRY(dn_cuda_bias_act(out->data, NULL, l->batch, p->c, p->spatial, p->act, s), "in activation");
    return DN_OK;
}

/* delta <- delta * act' (the input is the pre-activation, still intact), then prev.delta += delta. */
static dn_status backward(dn_layer *l, const dn_tensor *const *in, dn_tensor *const *in_delta, dn_ctx *ctx)
{
    const activation *p = l->p;
    cudaStream_t s = dn_cuda_of(ctx)->stream;
    DN_CUDA_TRY(dn_cuda_act_grad(in[0]->data, l->output.data, l->delta.data, l->batch, p->c, p->spatial, p->act, s),
                "in activation's gradient");
    if (!in_delta[0]->data) return DN_OK;
    const int total = l->batch * l->outputs;
    DN_CUDA_TRY(dn_cuda_add_prefix(l->delta.data, total, in_delta[0]->data, total, total, 1, 1.f, s),
                "in activation's backward");
    return DN_OK;
}

const dn_kernels dn_cuda_kernels_activation = {.forward = forward, .backward = backward};
