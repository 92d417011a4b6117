/* [upsample] on the CPU. */

#include "../layer_upsample.h"
#include "cpu.h"

static dn_status forward(dn_layer *l, const dn_tensor *const *srcs, dn_tensor *out, dn_ctx *ctx)
{
    (void)out;
    const float *in = srcs[0]->data;
    const upsample *p = l->p;
    const int k = p->k, ow = l->out_w, oh = l->out_h, w = l->w, h = l->h;
    const float scale = p->scale;
    const long planes = (long)l->batch * l->c;
    #pragma omp parallel for collapse(2) num_threads(dn_cpu_threads())
    for (long pl = 0; pl < planes; pl++)
        for (int y = 0; y < oh; y++) {
            const float *src = in + pl * h * w;
            float *dst = l->output.data + pl * oh * ow + (long)y * ow;
            if (!p->down) {
                const float *row = src + (long)(y / k) * w;
                for (int x = 0; x < ow; x++) dst[x] = scale * row[x / k];
            } else {
                for (int x = 0; x < ow; x++) {
                    float sum = 0;
                    for (int dy = 0; dy < k; dy++)
                        for (int dx = 0; dx < k; dx++) sum += src[(long)(y * k + dy) * w + x * k + dx];
                    dst[x] = scale * sum;
                }
            }
        }
    return DN_OK;
}

/* Up: prev.delta[y/k, x/k] += scale * delta[y, x]; down: each pixel of a block += scale * delta[block]. */
static dn_status backward(dn_layer *l, const dn_tensor *const *srcs, dn_tensor *const *src_deltas, dn_ctx *ctx)
{
    float *in_delta = src_deltas[0]->data;
    if (!in_delta) return DN_OK;
    const upsample *p = l->p;
    const int k = p->k, ow = l->out_w, oh = l->out_h, w = l->w, h = l->h;
    const float scale = p->scale;
    const long planes = (long)l->batch * l->c;
    if (!p->down) {
        #pragma omp parallel for collapse(2) num_threads(dn_cpu_threads())
        for (long pl = 0; pl < planes; pl++)
            for (int y = 0; y < h; y++) {
                float *dst = in_delta + pl * h * w + (long)y * w;
                const float *d = l->delta.data + pl * oh * ow;
                for (int x = 0; x < w; x++) {
                    float sum = 0;
                    for (int dy = 0; dy < k; dy++)
                        for (int dx = 0; dx < k; dx++) sum += d[(long)(y * k + dy) * ow + x * k + dx];
                    dst[x] += scale * sum;
                }
            }
    } else {
        #pragma omp parallel for collapse(2) num_threads(dn_cpu_threads())
        for (long pl = 0; pl < planes; pl++)
            for (int y = 0; y < oh; y++) {
                float *dst = in_delta + pl * h * w;
                const float *d = l->delta.data + pl * oh * ow + (long)y * ow;
                for (int x = 0; x < ow; x++) {
                    const float v = scale * d[x];
                    for (int dy = 0; dy < k; dy++)
                        for (int dx = 0; dx < k; dx++) dst[(long)(y * k + dy) * w + x * k + dx] += v;
                }
            }
    }
    return DN_OK;
}

const dn_kernels DN_CPU(kernels_upsample) = {.forward = forward, .backward = backward};
