/* [convolutional] on CUDA. An inference network's prepare folds batch norm (spec §3.3) on
   the host and uploads the folded weights; a training network's uploads the raw arrays and
   their accumulators, and its forward normalises with batch statistics in training passes
   (spec §4.4, the CPU's semantics), the rolling ones otherwise. The GEMM passes are in
   conv_passes.c. */
#include <math.h>

#include "../layer_convolutional.h"
#include "cuda.h"

static size_t workspace(const dn_layer *l, int train, size_t room)
{
    (void)train;
    (void)room;
    const conv *p = l->p;
    const int direct = p->g.size == 1 && p->g.stride_x == 1 && p->g.stride_y == 1 && p->g.dilation == 1 &&
                       p->g.pad == 0;
    return direct ? 0 : (size_t)p->g.c * p->g.size * p->g.size * l->out_w * l->out_h;
}

/* share_index layers read another layer's weights; training them would update that layer's. */
static const char *unsupported(const dn_layer *l)
{
    const conv *p = l->p;
    return p->shared && l->train ? "with share_index, in training" : NULL;
}

static dn_status prepare_folded(dn_layer *l, dn_cuda_net *s, dn_cuda_params *dev)
{
    const conv *p = l->p, *src = p->shared ? p->shared : p;
    if (!l->batch_normalize) {
        DN_TRY(dn_cuda_put(s, &dev->weights, src->weights, p->nweights, "convolution weights"));
        return dn_cuda_put(s, &dev->biases, src->biases, p->n, "convolution biases");
    }
    float *w = malloc(sizeof(float) * ((size_t)p->nweights + p->n)), *b = w + p->nweights;
    if (!w) return dn_fail(DN_ERR_OOM, "out of memory folding batch norm into layer %d", l->index);
    const int per = p->nweights / p->n;
    for (int f = 0; f < p->n; f++) {
        const double sd = sqrt((double)src->bn.variance[f] + 1e-5);
        const float t = (float)(src->bn.scales[f] / sd);
        b[f] = (float)(src->biases[f] - src->bn.scales[f] * src->bn.mean[f] / sd);
        for (int i = 0; i < per; i++) w[(size_t)f * per + i] = src->weights[(size_t)f * per + i] * t;
    }
    dn_status st = dn_cuda_put(s, &dev->weights, w, p->nweights, "convolution weights");
    if (st == DN_OK) st = dn_cuda_put(s, &dev->biases, b, p->n, "convolution biases");
    free(w); /* upload copied it into its staging buffer */
    return st;
}

/* A training network: the raw parameters, their accumulators (NULL on the host: none) and scratch. */
static dn_status prepare_raw(dn_layer *l, dn_cuda_net *s, dn_cuda_params *dev)
{
    const conv *p = l->p, *src = p->shared ? p->shared : p;
    const size_t n = p->n, out = (size_t)l->batch * l->outputs;
    DN_TRY(dn_cuda_put(s, &dev->weights, src->weights, p->nweights, "convolution weights"));
    DN_TRY(dn_cuda_put(s, &dev->biases, src->biases, n, "convolution biases"));
    DN_TRY(dn_cuda_put(s, &dev->weight_updates, p->weight_updates, p->nweights, "convolution weight updates"));
    DN_TRY(dn_cuda_put(s, &dev->bias_updates, p->bias_updates, n, "convolution bias updates"));
    DN_TRY(p->preact ? dn_cuda_ensure(s, &dev->preact, out, "pre-activations") : DN_OK);
    if (!l->batch_normalize) return DN_OK;
    DN_TRY(dn_cuda_put(s, &dev->scales, p->bn.scales, n, "batch-norm scales"));
    DN_TRY(dn_cuda_put(s, &dev->mean, p->bn.mean, n, "batch-norm rolling mean"));
    DN_TRY(dn_cuda_put(s, &dev->variance, p->bn.variance, n, "batch-norm rolling variance"));
    DN_TRY(dn_cuda_put(s, &dev->scale_updates, p->bn.scale_updates, n, "batch-norm scale updates"));
    DN_TRY(dn_cuda_ensure(s, &dev->batch_mean, n, "batch-norm mean"));
    DN_TRY(dn_cuda_ensure(s, &dev->batch_var, n, "batch-norm variance"));
    return dn_cuda_ensure(s, &dev->x_norm, out, "batch-norm normalised outputs");
}

/* A network built for training keeps x_norm (batch-norm layers) or weight updates (the others). */
static int in_training_network(const dn_layer *l)
{
    const conv *p = l->p;
    return l->batch_normalize ? p->bn.x_norm != NULL : p->weight_updates != NULL;
}

static dn_status prepare(dn_layer *l, dn_ctx *ctx)
{
    dn_cuda_net *s = dn_cuda_of(ctx);
    dn_cuda_params *dev = dn_cuda_layer_params(s, l->index);
    if (!dev) return dn_fail(DN_ERR_OOM, "out of memory preparing layer %d", l->index);
    const int train = in_training_network(l);
    DN_TRY(train ? prepare_raw(l, s, dev) : prepare_folded(l, s, dev));
    return dn_cuda_conv_setup(l, dev, ctx, train);
}

static dn_status forward(dn_layer *l, const dn_tensor *const *in, dn_tensor *out, dn_ctx *ctx)
{
    const conv *p = l->p;
    dn_cuda_net *s = dn_cuda_of(ctx);
    dn_cuda_params *dev;
    DN_TRY(dn_cuda_prepared(s, l, &dev));
    const int spatial = l->out_w * l->out_h;
    DN_TRY(dn_cuda_conv_forward(l, in[0]->data, dev->weights.data, out->data, ctx));
    if (dev->scales.data) /* raw batch norm (a training network) */
        DN_CUDA_TRY(dn_cuda_bn_forward(out->data, dev->x_norm.data, dev->batch_mean.data, dev->batch_var.data,
                                       dev->mean.data, dev->variance.data, dev->scales.data, l->batch, p->n, spatial,
                                       ctx->training, p->bn.rolling, s->stream), "in batch norm");
    if (ctx->training && dev->preact.data) { /* keep the pre-activation for the gradient */
        DN_CUDA_TRY(dn_cuda_bias_act(out->data, dev->biases.data, l->batch, p->n, spatial, DN_ACT_LINEAR, s->stream),
                    "in a convolution's bias");
        DN_CUDA_TRY(cudaMemcpyAsync(dev->preact.data, out->data, sizeof(float) * dev->preact.n,
                                    cudaMemcpyDeviceToDevice, s->stream), "keeping pre-activations");
        DN_CUDA_TRY(dn_cuda_bias_act(out->data, NULL, l->batch, p->n, spatial, p->act, s->stream),
                    "in a convolution's activation");
        return DN_OK;
    }
    DN_CUDA_TRY(dn_cuda_bias_act(out->data, dev->biases.data, l->batch, p->n, spatial, p->act, s->stream),
                "in a convolution's activation");
    return DN_OK;
}

/* Through the activation, bias and batch norm (delta in place), then the GEMMs. */
static dn_status backward(dn_layer *l, const dn_tensor *const *in, dn_tensor *const *in_delta, dn_ctx *ctx)
{
    const conv *p = l->p;
    dn_cuda_net *s = dn_cuda_of(ctx);
    dn_cuda_params *dev;
    DN_TRY(dn_cuda_prepared(s, l, &dev));
    const int spatial = l->out_w * l->out_h;
    DN_CUDA_TRY(dn_cuda_act_grad(dev->preact.data, l->output.data, l->delta.data, l->batch, p->n, spatial, p->act,
                                 s->stream), "in a convolution's activation gradient");
    DN_CUDA_TRY(dn_cuda_bias_bn_backward(l->delta.data, dev->x_norm.data, dev->scales.data, dev->batch_var.data,
                                         dev->bias_updates.data, dev->scale_updates.data, l->batch, p->n, spatial,
                                         s->stream), "in a convolution's bias and batch-norm gradient");
    return dn_cuda_conv_backward(l, in[0]->data, l->delta.data, dev->weights.data, dev->weight_updates.data,
                                 in_delta[0]->data, ctx);
}

static dn_status update(dn_layer *l, const dn_update *u, dn_ctx *ctx)
{
    dn_cuda_net *s = dn_cuda_of(ctx);
    dn_cuda_params *dev;
    DN_TRY(dn_cuda_prepared(s, l, &dev));
    const float lr = u->learning_rate * l->lr_mult;
    DN_TRY(dn_cuda_sgd_update(s, &dev->weights, &dev->weight_updates, u, lr, 1));
    DN_TRY(dn_cuda_sgd_update(s, &dev->biases, &dev->bias_updates, u, lr, 0));
    return dn_cuda_sgd_update(s, &dev->scales, &dev->scale_updates, u, lr, 0);
}

static dn_status pull(const dn_layer *l, const dn_ctx *ctx)
{
    const conv *p = l->p;
    dn_cuda_net *s = dn_cuda_of(ctx);
    if (p->shared || l->index >= s->n_params) return DN_OK;
    const dn_cuda_params *dev = &s->params[l->index];
    if (!dev->weight_updates.data && !dev->x_norm.data) return DN_OK; /* holds folded or frozen copies */
    DN_TRY(dn_cuda_get(s, p->weights, &dev->weights));
    DN_TRY(dn_cuda_get(s, p->biases, &dev->biases));
    DN_TRY(dn_cuda_get(s, p->weight_updates, &dev->weight_updates));
    DN_TRY(dn_cuda_get(s, p->bias_updates, &dev->bias_updates));
    DN_TRY(dn_cuda_get(s, p->bn.scales, &dev->scales));
    DN_TRY(dn_cuda_get(s, p->bn.mean, &dev->mean));
    DN_TRY(dn_cuda_get(s, p->bn.variance, &dev->variance));
    return dn_cuda_get(s, p->bn.scale_updates, &dev->scale_updates);
}

const dn_kernels dn_cuda_kernels_convolutional = {.prepare = prepare, .workspace = workspace, .forward = forward,
                                                  .backward = backward, .update = update, .unsupported = unsupported,
                                                  .pull = pull};
