/* [reorg] on the CPU. */

#include "../layer_reorg.h"
#include "cpu.h"

/* For position (k, j, i) of a (c, h, w) block: the position in the (c/s^2, h*s, w*s) view. */
static long wide_index(int i, int j, int k, int w, int h, int c, int s)
{
    const int oc = c / (s * s), c2 = k % oc, off = k / oc;
    return (i * s + off % s) + (long)w * s * ((j * s + off / s) + (long)h * s * c2);
}

/* reorg_cpu over the layer's input dims (w, h, c): gather (reverse=0) or scatter (reverse=1),
   accumulating into dst when add is set (backward). */
static void permute(const dn_layer *l, const float *src, float *dst, int scatter, int add)
{
    const reorg *p = l->p;
    const int w = l->w, h = l->h, c = l->c, s = p->stride;
    const long per = (long)w * h * c;
    #pragma omp parallel for collapse(2) num_threads(dn_cpu_threads())
    for (int b = 0; b < l->batch; b++)
        for (int k = 0; k < c; k++)
            for (int j = 0; j < h; j++)
                for (int i = 0; i < w; i++) {
                    const long near = b * per + i + (long)w * (j + (long)h * k);
                    const long wide = b * per + wide_index(i, j, k, w, h, c, s);
                    const long to = scatter ? wide : near, from = scatter ? near : wide;
                    if (add) dst[to] += src[from];
                    else dst[to] = src[from];
                }
}

static dn_status forward(dn_layer *l, const dn_tensor *const *srcs, dn_tensor *out, dn_ctx *ctx)
{
    (void)out;
    const float *in = srcs[0]->data;
    permute(l, in, l->output.data, ((const reorg *)l->p)->reverse, 0);
    return DN_OK;
}

static dn_status backward(dn_layer *l, const dn_tensor *const *srcs, dn_tensor *const *src_deltas, dn_ctx *ctx)
{
    float *in_delta = src_deltas[0]->data;
    if (in_delta) permute(l, l->delta.data, in_delta, !((const reorg *)l->p)->reverse, 1);
    return DN_OK;
}

const dn_kernels DN_CPU(kernels_reorg) = {.forward = forward, .backward = backward};
