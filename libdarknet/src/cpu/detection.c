/* [detection] on the CPU: a copy, with softmax=1 a softmax over each cell's classes. */
#include <string.h>

#include "../layer_detection.h"
#include "cpu.h"

static dn_status forward(dn_layer *l, const dn_tensor *const *srcs, dn_tensor *out, dn_ctx *ctx)
{
    (void)ctx;
    const detection *p = l->p;
    memcpy(out->data, srcs[0]->data, sizeof(float) * l->batch * (size_t)l->outputs);
    if (!p->softmax) return DN_OK;
    const int cells = p->side * p->side;
    #pragma omp parallel for collapse(2) num_threads(dn_cpu_threads())
    for (int b = 0; b < l->batch; b++)
        for (int i = 0; i < cells; i++)
            dn_softmax_inplace(out->data + (size_t)b * l->outputs + (size_t)i * p->classes, p->classes);
    return DN_OK;
}

const dn_kernels DN_CPU(kernels_detection) = {.forward = forward};
