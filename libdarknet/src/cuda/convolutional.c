/* [convolutional] on CUDA: im2col + cuBLAS SGEMM per image and group, then bias and
   activation in one kernel. prepare folds batch norm (spec §3.3) on the host and
   uploads the weights the kernels read. */
#include <math.h>

#include "../layer_convolutional.h"
#include "cuda.h"

static int is_direct(const conv *p)
{
    return p->g.size == 1 && p->g.stride_x == 1 && p->g.stride_y == 1 && p->g.dilation == 1 && p->g.pad == 0;
}

static size_t workspace(const dn_layer *l, int train)
{
    (void)train;
    const conv *p = l->p;
    return is_direct(p) ? 0 : (size_t)p->g.c * p->g.size * p->g.size * l->out_w * l->out_h;
}

static dn_status prepare(dn_layer *l, dn_ctx *ctx)
{
    const conv *p = l->p, *src = p->shared ? p->shared : p;
    dn_cuda_net *s = dn_cuda_of(ctx);
    dn_cuda_params *dev = dn_cuda_layer_params(s, l->index);
    if (!dev) return dn_fail(DN_ERR_OOM, "out of memory preparing layer %d", l->index);
    if (!l->batch_normalize) {
        DN_TRY(dn_cuda_put(s, &dev->weights, &dev->n_weights, src->weights, p->nweights, "convolution weights"));
        return dn_cuda_put(s, &dev->biases, &dev->n_biases, src->biases, p->n, "convolution biases");
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
    dn_status st = dn_cuda_put(s, &dev->weights, &dev->n_weights, w, p->nweights, "convolution weights");
    if (st == DN_OK) st = dn_cuda_put(s, &dev->biases, &dev->n_biases, b, p->n, "convolution biases");
    /* upload copied w into its staging buffer */
    free(w);
    return st;
}

static dn_status forward(dn_layer *l, const dn_tensor *const *in, dn_tensor *out, dn_ctx *ctx)
{
    const conv *p = l->p;
    dn_cuda_net *s = dn_cuda_of(ctx);
    const dn_cuda_params *dev = l->index < s->n_params ? &s->params[l->index] : NULL;
    if (!dev || !dev->weights)
        return dn_fail(DN_ERR_INTERNAL, "layer %d [convolutional] ran before its weights were on the GPU", l->index);
    const int ng = p->n / p->groups, k = p->g.c * p->g.size * p->g.size, spatial = l->out_w * l->out_h;
    const dn_cuda_conv g = {p->g.c, p->g.h, p->g.w, p->g.size, p->g.stride_x, p->g.stride_y, p->g.pad,
                            p->g.dilation, p->g.out_h, p->g.out_w};
    for (int b = 0; b < l->batch; b++)
        for (int gi = 0; gi < p->groups; gi++) {
            const float *im = in[0]->data + (size_t)b * l->inputs + (size_t)gi * p->g.c * l->h * l->w;
            const float *col = im;
            if (!is_direct(p)) {
                DN_CUDA_TRY(dn_cuda_im2col(im, g, ctx->workspace.data, s->stream), "in im2col");
                col = ctx->workspace.data;
            }
            DN_TRY(dn_cuda_gemm(s->blas, ng, spatial, k, dev->weights + (size_t)gi * ng * k, k, col, spatial,
                                out->data + (size_t)b * l->outputs + (size_t)gi * ng * spatial, spatial));
        }
    DN_CUDA_TRY(dn_cuda_bias_act(out->data, dev->biases, l->batch, p->n, spatial, p->act, s->stream),
                "in a convolution's activation");
    return DN_OK;
}

const dn_kernels dn_cuda_kernels_convolutional = {.prepare = prepare, .workspace = workspace, .forward = forward};
