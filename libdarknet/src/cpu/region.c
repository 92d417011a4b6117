/* [region] on the CPU. */
#include <math.h>
#include <string.h>

#include "../layer_region.h"
#include "cpu.h"

static dn_status forward(dn_layer *l, const dn_tensor *const *srcs, dn_tensor *out, dn_ctx *ctx)
{
    (void)out;
    const float *in = srcs[0]->data;
    const region *p = l->p;
    const int spatial = l->w * l->h, size = p->classes + p->coords + 1, channels = l->c;
    #pragma omp parallel for collapse(2) num_threads(dn_cpu_threads())
    for (int b = 0; b < l->batch; b++)
        for (int i = 0; i < spatial; i++) {
            const float *src = in + (long)b * l->outputs + i;
            float *cell = l->output.data + (long)b * l->outputs + (long)i * channels;
            for (int c = 0; c < channels; c++) cell[c] = src[(long)c * spatial];
            for (int a = 0; a < p->n; a++) {
                float *r = cell + a * size;
                r[4] = region_logistic(r[4]);
                if (!p->softmax) continue;
                float *cls = r + 5, largest = -INFINITY, sum = 0;
                for (int j = 0; j < p->classes; j++) largest = cls[j] > largest ? cls[j] : largest;
                for (int j = 0; j < p->classes; j++) sum += cls[j] = (float)exp(cls[j] - largest);
                for (int j = 0; j < p->classes; j++) cls[j] /= sum;
            }
        }
    return DN_OK;
}

const dn_kernels DN_CPU(kernels_region) = {.forward = forward};
