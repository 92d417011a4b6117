/* [region] on the CPU: records cell-major, the logistic on objectness, a softmax over the
   classes or over each group of a softmax tree. */
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
                if (p->tree.n) {
                    for (int g = 0; g < p->tree.groups; g++)
                        dn_softmax_inplace(r + 5 + p->tree.group_start[g],
                                           p->tree.group_start[g + 1] - p->tree.group_start[g]);
                } else if (p->softmax) {
                    dn_softmax_inplace(r + 5, p->classes);
                }
            }
        }
    return DN_OK;
}

const dn_kernels DN_CPU(kernels_region) = {.forward = forward};
