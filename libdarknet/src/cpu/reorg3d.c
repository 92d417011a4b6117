/* [reorg3d] on the CPU. */

#include "../layer_reorg3d.h"
#include "cpu.h"

static dn_status forward(dn_layer *l, const dn_tensor *const *srcs, dn_tensor *out, dn_ctx *ctx)
{
    (void)out;
    const float *in = srcs[0]->data;
    const int s = ((const reorg3d *)l->p)->stride, c = l->c, w = l->w, h = l->h;
    const int ow = l->out_w, oh = l->out_h, oc = l->out_c;
    #pragma omp parallel for collapse(3) num_threads(dn_cpu_threads())
    for (int b = 0; b < l->batch; b++)
        for (int k = 0; k < oc; k++)
            for (int y = 0; y < oh; y++) {
                const int off = k / c, ci = k % c, dy = off / s, dx = off % s;
                const float *src = in + (((long)b * c + ci) * h + (long)y * s + dy) * w + dx;
                float *dst = l->output.data + (((long)b * oc + k) * oh + y) * ow;
                for (int x = 0; x < ow; x++) dst[x] = src[(long)x * s];
            }
    return DN_OK;
}

/* The inverse permutation, accumulated: in.delta[b, ci, y*s+dy, x*s+dx] += delta[b, (dy*s+dx)*c+ci, y, x]. */
static dn_status backward(dn_layer *l, const dn_tensor *const *srcs, dn_tensor *const *src_deltas, dn_ctx *ctx)
{
    float *in_delta = src_deltas[0]->data;
    if (!in_delta) return DN_OK;
    const int s = ((const reorg3d *)l->p)->stride, c = l->c, w = l->w, h = l->h;
    const int ow = l->out_w, oh = l->out_h, oc = l->out_c;
    #pragma omp parallel for collapse(3) num_threads(dn_cpu_threads())
    for (int b = 0; b < l->batch; b++)
        for (int k = 0; k < oc; k++)
            for (int y = 0; y < oh; y++) {
                const int off = k / c, ci = k % c, dy = off / s, dx = off % s;
                float *dst = in_delta + (((long)b * c + ci) * h + (long)y * s + dy) * w + dx;
                const float *d = l->delta.data + (((long)b * oc + k) * oh + y) * ow;
                for (int x = 0; x < ow; x++) dst[(long)x * s] += d[x];
            }
    return DN_OK;
}

const dn_kernels DN_CPU(kernels_reorg3d) = {.forward = forward, .backward = backward};
