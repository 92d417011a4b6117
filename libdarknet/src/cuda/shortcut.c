/* [shortcut] on CUDA, unweighted: the previous layer plus the overlapping channel
   prefix of each `from` layer, then the activation. */
#include "../layer_shortcut.h"
#include "cuda.h"

static const char *unsupported(const dn_layer *l)
{
    const shortcut *p = l->p;
    return p->nweights ? "with weights (weights_type)" : NULL;
}

/* A training network keeps the pre-activation (swish, mish, ...) for the gradient. */
static dn_status prepare(dn_layer *l, dn_ctx *ctx)
{
    const shortcut *p = l->p;
    dn_cuda_net *s = dn_cuda_of(ctx);
    dn_cuda_params *dev = dn_cuda_layer_params(s, l->index);
    if (!dev) return dn_fail(DN_ERR_OOM, "out of memory preparing layer %d", l->index);
    return p->preact ? dn_cuda_ensure(s, &dev->preact, (size_t)l->batch * l->outputs, "pre-activations") : DN_OK;
}

static float *preact(const dn_layer *l, const dn_cuda_net *s)
{
    return l->index < s->n_params ? s->params[l->index].preact.data : NULL;
}

static dn_status forward(dn_layer *l, const dn_tensor *const *in, dn_tensor *out, dn_ctx *ctx)
{
    const shortcut *p = l->p;
    dn_cuda_net *net = dn_cuda_of(ctx);
    cudaStream_t s = net->stream;
    const size_t total = (size_t)l->batch * l->outputs;
    DN_CUDA_TRY(cudaMemcpyAsync(out->data, in[0]->data, sizeof(float) * total, cudaMemcpyDeviceToDevice, s),
                "in shortcut");
    for (int k = 1; k <= p->n; k++) {
        const int src_outputs = (int)(in[k]->n / l->batch);
        const int m = src_outputs < l->outputs ? src_outputs : l->outputs;
        DN_CUDA_TRY(dn_cuda_add_prefix(in[k]->data, src_outputs, out->data, l->outputs, m, l->batch, 1.f, s),
                    "in shortcut");
    }
    float *x = preact(l, net);
    if (ctx->training && x)
        DN_CUDA_TRY(cudaMemcpyAsync(x, out->data, sizeof(float) * total, cudaMemcpyDeviceToDevice, s),
                    "keeping pre-activations");
    DN_CUDA_TRY(dn_cuda_bias_act(out->data, NULL, l->batch, l->out_c, l->out_w * l->out_h, p->act, s),
                "in shortcut's activation");
    return DN_OK;
}

/* delta <- delta * act'; every input's delta (on the overlapping prefix) += delta. */
static dn_status backward(dn_layer *l, const dn_tensor *const *in, dn_tensor *const *in_delta, dn_ctx *ctx)
{
    const shortcut *p = l->p;
    dn_cuda_net *net = dn_cuda_of(ctx);
    cudaStream_t s = net->stream;
    DN_CUDA_TRY(dn_cuda_act_grad(preact(l, net), l->output.data, l->delta.data, l->batch, l->out_c,
                                 l->out_w * l->out_h, p->act, s), "in shortcut's activation gradient");
    for (int k = 0; k <= p->n; k++) {
        if (!in_delta[k]->data) continue;
        const int src_outputs = (int)(in[k]->n / l->batch);
        const int m = src_outputs < l->outputs ? src_outputs : l->outputs;
        DN_CUDA_TRY(dn_cuda_add_prefix(l->delta.data, l->outputs, in_delta[k]->data, src_outputs, m, l->batch, 1.f,
                                       s), "in shortcut's backward");
    }
    return DN_OK;
}

const dn_kernels dn_cuda_kernels_shortcut = {.prepare = prepare, .forward = forward, .backward = backward,
                                             .unsupported = unsupported};
