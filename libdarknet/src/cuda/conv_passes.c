/* A convolution's GEMM passes on CUDA: cuDNN over the whole batch when the network has it
   (algorithms chosen when the layer is prepared), else im2col + cuBLAS per image and group,
   which also serves the layers cuDNN's geometry differs from (dilation > 1). */
#include "../layer_convolutional.h"
#include "dnn.h"

static int is_direct(const conv *p)
{
    return p->g.size == 1 && p->g.stride_x == 1 && p->g.stride_y == 1 && p->g.dilation == 1 && p->g.pad == 0;
}

static dn_cuda_conv geometry(const conv *p)
{
    return (dn_cuda_conv){p->g.c, p->g.h, p->g.w, p->g.size, p->g.stride_x, p->g.stride_y, p->g.pad,
                          p->g.dilation, p->g.out_h, p->g.out_w};
}

dn_status dn_cuda_conv_setup(const dn_layer *l, dn_cuda_params *dev, dn_ctx *ctx, int train)
{
    const conv *p = l->p;
    dn_cuda_net *s = dn_cuda_of(ctx);
    if (!s->dnn || p->g.dilation != 1) return DN_OK; /* darknet's output size for dilation is not cuDNN's */
    const dn_cuda_dnn_shape sh = {l->batch, l->c, l->h, l->w, p->n, l->out_h, l->out_w, p->g.size, p->g.stride_x,
                                  p->g.stride_y, p->g.pad, 1, p->groups};
    DN_TRY(dn_cuda_dnn_setup(s->dnn, &dev->dnn, &sh, train));
    size_t bytes = dev->dnn->fwd_bytes;
    if (dev->dnn->bwd_data_bytes > bytes) bytes = dev->dnn->bwd_data_bytes;
    if (dev->dnn->bwd_filter_bytes > bytes) bytes = dev->dnn->bwd_filter_bytes;
    const size_t floats = (bytes + sizeof(float) - 1) / sizeof(float);
    return floats > s->dnn_ws.n ? dn_cuda_ensure(s, &s->dnn_ws, floats, "cuDNN's workspace") : DN_OK;
}

/* The layer's cuDNN convolution, NULL where it runs im2col + cuBLAS. */
static const dn_cuda_dnn *dnn_of(const dn_layer *l, const dn_cuda_net *s)
{
    return s->dnn && l->index < s->n_params ? s->params[l->index].dnn : NULL;
}

dn_status dn_cuda_conv_forward(const dn_layer *l, const float *in, const float *w, float *out, dn_ctx *ctx)
{
    const conv *p = l->p;
    dn_cuda_net *s = dn_cuda_of(ctx);
    const dn_cuda_dnn *d = dnn_of(l, s);
    if (d) return dn_cuda_dnn_forward(s->dnn, d, in, w, out, s->dnn_ws.data, s->dnn_ws.n * sizeof(float));
    const int ng = p->n / p->groups, k = p->g.c * p->g.size * p->g.size, spatial = l->out_w * l->out_h;
    const dn_cuda_conv g = geometry(p);
    for (int b = 0; b < l->batch; b++)
        for (int gi = 0; gi < p->groups; gi++) {
            const float *im = in + (size_t)b * l->inputs + (size_t)gi * p->g.c * l->h * l->w;
            const float *col = im;
            if (!is_direct(p)) {
                DN_CUDA_TRY(dn_cuda_im2col(im, g, ctx->workspace.data, s->stream), "in im2col");
                col = ctx->workspace.data;
            }
            DN_TRY(dn_cuda_gemm(s->blas, 0, 0, ng, spatial, k, 1, w + (size_t)gi * ng * k, k, col, spatial, 0,
                                out + (size_t)b * l->outputs + (size_t)gi * ng * spatial, spatial));
        }
    return DN_OK;
}

dn_status dn_cuda_conv_backward(const dn_layer *l, const float *in, const float *delta, const float *w, float *dw,
                                float *in_delta, dn_ctx *ctx)
{
    const conv *p = l->p;
    dn_cuda_net *s = dn_cuda_of(ctx);
    const dn_cuda_dnn *d = dnn_of(l, s);
    if (d) return dn_cuda_dnn_backward(s->dnn, d, in, delta, w, dw, in_delta, s->dnn_ws.data,
                                       s->dnn_ws.n * sizeof(float));
    const int ng = p->n / p->groups, k = p->g.c * p->g.size * p->g.size, spatial = l->out_w * l->out_h;
    const dn_cuda_conv g = geometry(p);
    float *ws = ctx->workspace.data;
    for (int b = 0; b < l->batch; b++)
        for (int gi = 0; gi < p->groups; gi++) {
            const size_t in_off = (size_t)b * l->inputs + (size_t)gi * p->g.c * l->h * l->w;
            const float *dg = delta + (size_t)b * l->outputs + (size_t)gi * ng * spatial;
            const float *wg = w + (size_t)gi * ng * k;
            if (dw) {
                const float *col = in + in_off;
                if (!is_direct(p)) {
                    DN_CUDA_TRY(dn_cuda_im2col(in + in_off, g, ws, s->stream), "in im2col");
                    col = ws;
                }
                DN_TRY(dn_cuda_gemm(s->blas, 0, 1, ng, k, spatial, 1, dg, spatial, col, spatial, 1,
                                    dw + (size_t)gi * ng * k, k));
            }
            if (!in_delta) continue;
            if (is_direct(p)) { /* the column matrix is the input: its delta is added in place */
                DN_TRY(dn_cuda_gemm(s->blas, 1, 0, k, spatial, ng, 1, wg, k, dg, spatial, 1, in_delta + in_off,
                                    spatial));
                continue;
            }
            /* the stream runs in order: the weight gradient has read ws before it is overwritten */
            DN_TRY(dn_cuda_gemm(s->blas, 1, 0, k, spatial, ng, 1, wg, k, dg, spatial, 0, ws, spatial));
            DN_CUDA_TRY(dn_cuda_col2im_add(ws, g, in_delta + in_off, s->stream), "in col2im");
        }
    return DN_OK;
}
