/* [convolutional] on the CPU. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "../layer_convolutional.h"
#include "cpu.h"

#define BLOCK_PIXELS 1024 /* output pixels per block of forward_blocks, at least */

static int is_direct(const conv *p)
{
    /* a 1x1, stride-1 convolution reads its input directly (spec §3.2) */
    return p->g.size == 1 && p->g.stride_x == 1 && p->g.stride_y == 1 && p->g.dilation == 1 && p->g.pad == 0;
}

/* a 3x3, stride-1, pad-1 convolution runs as Winograd F(m x m, 3x3) when fused and
   dn_wino_tile finds it faster */
static int is_wino(const conv *p)
{
    return p->g.size == 3 && p->g.stride_x == 1 && p->g.stride_y == 1 && p->g.dilation == 1 && p->g.pad == 1 &&
           p->groups == 1;
}

/* Whether forward runs on the folded batch-norm weights. */
static int use_fused(const dn_layer *l, const dn_ctx *ctx)
{
    const conv *p = l->p;
    return ctx->prepared && !ctx->training && p->fused_biases;
}

static const conv *params(const dn_layer *l)
{
    const conv *p = l->p;
    return p->shared ? p->shared : p;
}

/* The Winograd tile size prepared inference uses for this layer, 0 for im2col. */
static int wino_tile(const dn_layer *l)
{
    const conv *p = l->p;
    return l->batch_normalize && is_wino(p) ? dn_wino_tile(p->g.c, p->n, l->h, l->w) : 0;
}

/* Output rows per block of forward_blocks, and the blocks of the map. */
static int block_rows(const dn_layer *l) { return (BLOCK_PIXELS + l->out_w - 1) / l->out_w; }
static int blocks(const dn_layer *l) { return (l->out_h + block_rows(l) - 1) / block_rows(l); }

/* Whether the fused weights are packed for dn_pgemm (one group: one GEMM per image). */
static int is_packed(const conv *p) { return p->groups == 1; }

/* Floats of one block's unrolled input (0 for 1x1: read in place), a whole number of cache lines
   so that every thread's slot starts on one. */
static size_t block_floats(const dn_layer *l)
{
    const conv *p = l->p;
    if (is_direct(p)) return 0;
    return (size_t)p->g.c * p->g.size * p->g.size * dn_col_stride(block_rows(l) * l->out_w);
}

/* Inference unrolls one block per thread at a time where the map has blocks for every
   thread (forward_blocks), the whole input otherwise; training unrolls whole images. A
   Winograd layer takes what its Winograd pass does within `room`, and unfused (fuse=False)
   unrolls block by block in that, at least one block (forward_blocks runs fewer threads). */
static size_t workspace(const dn_layer *l, int train, size_t room)
{
    const conv *p = l->p;
    const size_t whole = is_direct(p) ? 0 : (size_t)p->g.c * p->g.size * p->g.size * dn_col_stride(l->out_w * l->out_h);
    const int m = train ? 0 : wino_tile(l);
    if (m) {
        const size_t wn = dn_wino_workspace(p->g.c, p->n, l->h, l->w, m, l->batch, room);
        const size_t block = block_floats(l) < whole ? block_floats(l) : whole;
        return wn > block ? wn : block;
    }
    const size_t per_thread = (size_t)dn_cpu_threads() * block_floats(l);
    return !train && blocks(l) >= 2 * dn_cpu_threads() && per_thread < whole ? per_thread : whole;
}

/* The inference-only arrays: packed weights (one group), the folded scales and biases. */
static dn_status alloc_fused(dn_layer *l)
{
    conv *p = l->p;
    p->wino_m = wino_tile(l);
    DN_TRY(dn_alloc_floats(&p->fused_biases, p->n, "fused convolution biases"));
    if (l->batch_normalize) DN_TRY(dn_alloc_floats(&p->fused_scales, p->n, "fused convolution scales"));
    return is_packed(p) ? dn_alloc_floats_aligned(&p->packed_weights, dn_pack_size(p->n, p->nweights / p->n),
                                          "packed convolution weights")
                        : DN_OK;
}

/* Fold batch norm into a scale and bias per filter (spec §3.3): im2col and 1x1 layers
   multiply the raw weights (one group: a packed copy of them, for dn_pgemm) and scale in
   the output pass, Winograd layers fold the scale into the weights they transform. The
   packed copy is a permutation of the raw weights, so it replaces them (unless other
   layers share them): pull restores them, exactly, for saving, param() and resizing. */
static dn_status prepare(dn_layer *l, dn_ctx *ctx)
{
    conv *p = l->p;
    const conv *src = params(l);
    if (!l->batch_normalize && !is_packed(p)) return DN_OK;
    if (!p->fused_biases) DN_TRY(alloc_fused(l));
    if (!src->weights) return DN_OK; /* dropped by the last prepare: every prepared array is current */
    const int per = p->nweights / p->n;
    const int drop = p->packed_weights && !p->shared && !p->lent; /* the packed copy replaces the raw weights */
    for (int f = 0; f < p->n; f++) {
        float t = 1.f;
        p->fused_biases[f] = src->biases[f];
        if (l->batch_normalize) {
            double sd = sqrt((double)src->bn.variance[f] + 1e-5);
            t = (float)(src->bn.scales[f] / sd);
            p->fused_biases[f] = (float)(src->biases[f] - src->bn.scales[f] * src->bn.mean[f] / sd);
        }
        if (p->fused_scales) p->fused_scales[f] = t;
        for (int i = 0; p->packed_weights && i < per; i++)
            p->packed_weights[dn_packed_at(per, f, i)] = src->weights[(size_t)f * per + i];
        /* panel by panel: the raw rows packed so far leave memory as their copy enters it */
        if (drop && (f + 1) % DN_PACK_MR == 0) dn_release_pages(src->weights, sizeof(float) * (f + 1) * per);
    }
    for (int f = p->n; p->packed_weights && f < dn_pack_rows(p->n); f++) /* the last panel's padding */
        for (int i = 0; i < per; i++) p->packed_weights[dn_packed_at(per, f, i)] = 0.f;
    if (drop) {
        dn_free_floats(&p->weights, p->nweights);
        ctx->device_newer = 1;
    }
    return DN_OK;
}

/* Restore the raw weights prepare dropped from their packed copy. */
static dn_status pull(const dn_layer *l, const dn_ctx *ctx)
{
    (void)ctx;
    conv *p = l->p;
    if (p->weights || !p->packed_weights) return DN_OK;
    DN_TRY(dn_alloc_floats(&p->weights, p->nweights, "convolution weights"));
    const int per = p->nweights / p->n;
    for (int f = 0; f < p->n; f++)
        for (int i = 0; i < per; i++) p->weights[(size_t)f * per + i] = p->packed_weights[dn_packed_at(per, f, i)];
    return DN_OK;
}

/* Inference on maps with a block per thread: blocks of whole output rows, each
   unrolled (unless 1x1) into its thread's slot of the workspace, multiplied and (given
   a bias: the epilogue) scaled, biased and activated by one thread while in cache. 0
   where the map is too small for that (one GEMM split across threads instead). A
   workspace sized for fewer threads than run now (see workspace) runs fewer threads. */
static int forward_blocks(const dn_layer *l, const float *im, const float *weights, int packed,
                          const float *scale, const float *bias, float *out, const dn_tensor *ws)
{
    const conv *p = l->p;
    const int ng = p->n / p->groups, k = p->g.c * p->g.size * p->g.size, spatial = l->out_w * l->out_h;
    const int rows = block_rows(l), n_blocks = blocks(l);
    const size_t slot = block_floats(l), full = (size_t)k * dn_col_stride(spatial);
    int threads = dn_cpu_threads();
    if (slot && ws->n < full && (size_t)threads * slot > ws->n) threads = (int)(ws->n / slot);
    if (n_blocks < 2 * threads && (!slot || ws->n >= full)) return 0;
    #pragma omp parallel for schedule(dynamic) num_threads(threads)
    for (int i = 0; i < n_blocks; i++) {
        const int oy0 = i * rows, oy1 = oy0 + rows < l->out_h ? oy0 + rows : l->out_h, len = (oy1 - oy0) * l->out_w;
        const float *col = im + (size_t)oy0 * l->out_w;
        int ldb = spatial;
        if (!is_direct(p)) {
            float *dst = ws->data + slot * omp_get_thread_num();
            ldb = dn_col_stride(len);
            dn_im2col_rows(im, &p->g, oy0, oy1, dst, ldb);
            col = dst;
        }
        float *o = out + (size_t)oy0 * l->out_w;
        if (packed) dn_pgemm_serial(ng, len, k, weights, col, ldb, o, spatial);
        else dn_gemm_serial(ng, len, k, weights, k, col, ldb, o, spatial);
        for (int f = 0; bias && f < ng; f++)
            dn_activate_affine_span(o + (size_t)f * spatial, len, scale ? scale[f] : 1.f, bias[f], p->act);
    }
    return 1;
}

static dn_status forward(dn_layer *l, const dn_tensor *const *srcs, dn_tensor *out, dn_ctx *ctx)
{
    (void)out;
    const float *in = srcs[0]->data;
    conv *p = l->p;
    const conv *src = params(l);
    const int fused = use_fused(l, ctx);
    const int packed = fused && p->packed_weights; /* the raw weights, packed for dn_pgemm */
    const float *weights = packed ? p->packed_weights : src->weights;
    const float *bias = fused ? p->fused_biases : src->biases;
    const int wino = fused && p->wino_m;
    const float *scale = fused && !wino ? p->fused_scales : NULL; /* Winograd: folded into its weights */
    /* inference with nothing between the convolution and its bias: both applied per image and group */
    const int epilogue = !ctx->training && (fused || !l->batch_normalize) && !dn_act_mixes_channels(p->act);
    const int ng = p->n / p->groups, k = p->g.c * p->g.size * p->g.size, spatial = l->out_w * l->out_h;
    if (ctx->training) /* raw weights, images split across threads (conv_train.c) */
        DN_TRY(dn_conv_forward_gemms(p, l->batch, in, l->inputs, weights, l->output.data, l->outputs, l->h * l->w,
                                     spatial, ctx));
    if (wino) /* all the images at once: the weights are transformed once */
        dn_wino_conv3x3(in, l->batch, l->inputs, p->g.c, l->h, l->w, p->n, p->wino_m, weights, p->fused_scales,
                        epilogue ? bias : NULL, epilogue ? p->act : DN_ACT_LINEAR, l->output.data, l->outputs,
                        ctx->workspace.data, ctx->workspace.n);
    for (int b = 0; !ctx->training && !wino && b < l->batch; b++)
        for (int g = 0; g < p->groups; g++) {
            const float *im = in + (size_t)b * l->inputs + (size_t)g * p->g.c * l->h * l->w;
            const float *w = weights + (size_t)g * ng * k;
            float *out = l->output.data + (size_t)b * l->outputs + (size_t)g * ng * spatial;
            const float *sg = scale ? scale + g * ng : NULL;
            if (forward_blocks(l, im, w, packed, sg, epilogue ? bias + g * ng : NULL, out, &ctx->workspace)) continue;
            const float *col = im;
            int ldb = spatial;
            if (!is_direct(p)) {
                ldb = dn_col_stride(spatial);
                dn_im2col(im, &p->g, ctx->workspace.data, ldb);
                col = ctx->workspace.data;
            }
            if (packed) dn_pgemm(ng, spatial, k, w, col, ldb, out, spatial);
            else dn_gemm(0, 0, ng, spatial, k, 1, w, k, col, ldb, 0, out, spatial);
            if (epilogue) dn_activate_affine(out, sg, bias + g * ng, 1, ng, spatial, p->act);
        }
    if (epilogue) return DN_OK;
    if (!fused && l->batch_normalize) {
        dn_bn bn = src->bn; /* share_index: the source's statistics over this layer's pixels (its size may differ) */
        bn.spatial = spatial;
        const int tail = !(ctx->training && p->preact) && !dn_act_mixes_channels(p->act); /* bias + act in it */
        dn_bn_forward(&bn, l->output.data, l->batch, ctx->training, tail ? bias : NULL, tail ? p->act : DN_ACT_LINEAR);
        if (tail) return DN_OK;
    }
    if (ctx->training && p->preact) {
        dn_add_bias(l->output.data, bias, l->batch, p->n, spatial);
        memcpy(p->preact, l->output.data, sizeof(float) * l->batch * l->outputs);
        dn_activate(l->output.data, l->batch, p->n, spatial, p->act);
    } else {
        dn_activate_affine(l->output.data, scale, bias, l->batch, p->n, spatial, p->act);
    }
    return DN_OK;
}

/* A share_index layer accumulates into the updates of the layer owning the weights
   (none when that layer is frozen). */
static dn_status backward(dn_layer *l, const dn_tensor *const *srcs, dn_tensor *const *src_deltas, dn_ctx *ctx)
{
    const float *in = srcs[0]->data;
    float *in_delta = src_deltas[0]->data;
    conv *p = l->p;
    const conv *src = params(l);
    const int spatial = l->out_w * l->out_h;
    dn_act_bias_bn_backward(l->batch_normalize ? &p->bn : NULL, p->preact, l->output.data, p->act, l->batch, p->n,
                            spatial, src->bias_updates, l->delta.data);
    return dn_conv_backward_gemms(p, l->batch, in, l->inputs, l->delta.data, l->outputs, src->weights,
                                  src->weight_updates, in_delta, l->h * l->w, spatial, ctx);
}

static dn_status update(dn_layer *l, const dn_update *u, dn_ctx *ctx)
{
    (void)ctx;
    conv *p = l->p;
    if (p->shared) return DN_OK;
    const float lr = u->learning_rate * l->lr_mult;
    dn_sgd(p->weights, p->weight_updates, p->nweights, u, lr, 1);
    dn_sgd(p->biases, p->bias_updates, p->n, u, lr, 0);
    if (l->batch_normalize) dn_sgd(p->bn.scales, p->bn.scale_updates, p->n, u, lr, 0);
    return DN_OK;
}

const dn_kernels DN_CPU(kernels_convolutional) = {.prepare = prepare, .workspace = workspace, .forward = forward, .backward = backward, .update = update, .pull = pull};
