/* [crop] on the CPU: the centre window, 2x - 1 unless noadjust. */
#include "../layer_crop.h"
#include "cpu.h"

static dn_status forward(dn_layer *l, const dn_tensor *const *srcs, dn_tensor *out, dn_ctx *ctx)
{
    (void)ctx;
    const crop *p = l->p;
    const float scale = p->noadjust ? 1.f : 2.f, shift = p->noadjust ? 0.f : -1.f;
    const int dy = (l->h - l->out_h) / 2, dx = (l->w - l->out_w) / 2, planes = l->batch * l->c;
    #pragma omp parallel for num_threads(dn_cpu_threads())
    for (int pl = 0; pl < planes; pl++)
        for (int y = 0; y < l->out_h; y++) {
            const float *src = srcs[0]->data + ((size_t)pl * l->h + y + dy) * l->w + dx;
            float *dst = out->data + ((size_t)pl * l->out_h + y) * l->out_w;
            for (int x = 0; x < l->out_w; x++) dst[x] = src[x] * scale + shift;
        }
    return DN_OK;
}

const dn_kernels DN_CPU(kernels_crop) = {.forward = forward};
