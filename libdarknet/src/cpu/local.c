/* [local] on the CPU: per output position a (filters x c*size*size) matrix times the
   input window, plus the biases, then the activation. */
#include <stdlib.h>

#include "../layer_local.h"
#include "cpu.h"

/* The input window of output position j, zero outside the image (im2col's column j). */
static void gather(const dn_layer *l, const local *p, const float *in, int j, float *window)
{
    const int k = p->size, y0 = (j / l->out_w) * p->stride - p->pad, x0 = (j % l->out_w) * p->stride - p->pad;
    for (int c = 0, t = 0; c < l->c; c++)
        for (int dy = 0; dy < k; dy++)
            for (int dx = 0; dx < k; dx++, t++) {
                const int y = y0 + dy, x = x0 + dx;
                window[t] = y >= 0 && y < l->h && x >= 0 && x < l->w ? in[((size_t)c * l->h + y) * l->w + x] : 0;
            }
}

static dn_status forward(dn_layer *l, const dn_tensor *const *srcs, dn_tensor *out, dn_ctx *ctx)
{
    (void)ctx;
    const local *p = l->p;
    const int taps = l->c * p->size * p->size, positions = l->out_w * l->out_h, filters = l->out_c;
    const long items = (long)l->batch * positions;
    int failed = 0;
    #pragma omp parallel num_threads(dn_cpu_threads()) reduction(|: failed)
    {
        float *window = malloc(sizeof(float) * taps);
        failed = !window;
        #pragma omp for
        for (long it = 0; it < items; it++) {
            if (!window) continue;
            const int b = (int)(it / positions), j = (int)(it % positions);
            float *o = out->data + (size_t)b * l->outputs;
            gather(l, p, srcs[0]->data + (size_t)b * l->inputs, j, window);
            const float *w = p->weights + (size_t)j * filters * taps;
            for (int f = 0; f < filters; f++) {
                float sum = p->biases[f * positions + j];
                for (int t = 0; t < taps; t++) sum += w[(size_t)f * taps + t] * window[t];
                o[f * positions + j] = sum;
            }
        }
        free(window);
    }
    if (failed) return dn_fail(DN_ERR_OOM, "out of memory for [local] layer %d's input window", l->index);
    dn_activate(out->data, l->batch, l->out_c, positions, p->act);
    return DN_OK;
}

const dn_kernels DN_CPU(kernels_local) = {.forward = forward};
