/* [activation] on the CPU. */
#include <string.h>

#include "../layer_activation.h"
#include "cpu.h"

static dn_status forward(dn_layer *l, const dn_tensor *const *srcs, dn_tensor *out, dn_ctx *ctx)
{
    (void)out;
    const float *in = srcs[0]->data;
    const activation *p = l->p;
    memcpy(l->output.data, in, sizeof(float) * l->batch * l->outputs);
    dn_activate(l->output.data, l->batch, p->c, p->spatial, p->act);
    return DN_OK;
}

/* delta <- delta * act'(y) (the input x is the previous layer's output, still intact),
   then prev.delta += delta. Upstream's CPU path assigns (copies) instead of adding; we
   accumulate like its GPU path, so a previous layer with other consumers keeps their
   contributions. */
static dn_status backward(dn_layer *l, const dn_tensor *const *srcs, dn_tensor *const *src_deltas, dn_ctx *ctx)
{
    const float *in = srcs[0]->data;
    float *in_delta = src_deltas[0]->data;
    const activation *p = l->p;
    dn_activate_grad(in, l->output.data, l->batch, p->c, p->spatial, p->act, l->delta.data);
    if (!in_delta) return DN_OK;
    const long total = (long)l->batch * l->outputs;
    #pragma omp parallel for simd num_threads(dn_cpu_threads())
    for (long i = 0; i < total; i++) in_delta[i] += l->delta.data[i];
    return DN_OK;
}

const dn_kernels DN_CPU(kernels_activation) = {.forward = forward, .backward = backward};
