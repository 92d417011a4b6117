/* [shortcut] on CUDA, unweighted: the previous layer plus the overlapping channel
   prefix of each `from` layer, then the activation. */
#include "../layer_shortcut.h"
#include "cuda.h"

static const char *unsupported(const dn_layer *l)
{
    const shortcut *p = l->p;
    return p->nweights ? "with weights (weights_type)" : NULL;
}

static dn_status forward(dn_layer *l, const dn_tensor *const *in, dn_tensor *out, dn_ctx *ctx)
{
    const shortcut *p = l->p;
    cudaStream_t s = dn_cuda_of(ctx)->stream;
    DN_CUDA_TRY(cudaMemcpyAsync(out->data, in[0]->data, sizeof(float) * l->batch * l->outputs,
                                cudaMemcpyDeviceToDevice, s), "in shortcut");
    for (int k = 1; k <= p->n; k++) {
        const int src_outputs = (int)(in[k]->n / l->batch);
        const int m = src_outputs < l->outputs ? src_outputs : l->outputs;
        DN_CUDA_TRY(dn_cuda_add_prefix(in[k]->data, src_outputs, out->data, l->outputs, m, l->batch, s),
                    "in shortcut");
    }
    DN_CUDA_TRY(dn_cuda_bias_act(out->data, NULL, l->batch, l->out_c, l->out_w * l->out_h, p->act, s),
                "in shortcut's activation");
    return DN_OK;
}

const dn_kernels dn_cuda_kernels_shortcut = {.forward = forward, .unsupported = unsupported};
