/* [sam] on the CPU. */
#include <string.h>

#include "../layer_sam.h"
#include "cpu.h"

static dn_status forward(dn_layer *l, const dn_tensor *const *srcs, dn_tensor *out, dn_ctx *ctx)
{
    (void)out;
    const float *in = srcs[0]->data;
    const sam *p = l->p;
    const float *from = srcs[1]->data;
    const long total = (long)l->batch * l->outputs;
    #pragma omp parallel for simd num_threads(dn_cpu_threads())
    for (long i = 0; i < total; i++) l->output.data[i] = in[i] * from[i];
    if (ctx->training && p->preact) memcpy(p->preact, l->output.data, sizeof(float) * total);
    dn_activate(l->output.data, l->batch, l->out_c, l->out_w * l->out_h, p->act);
    return DN_OK;
}

/* With d = delta * act'(y): in.delta += d * from; from.delta += d * in. */
static dn_status backward(dn_layer *l, const dn_tensor *const *srcs, dn_tensor *const *src_deltas, dn_ctx *ctx)
{
    const float *in = srcs[0]->data;
    float *in_delta = src_deltas[0]->data;
    const sam *p = l->p;
    const float *from = srcs[1]->data;
    float *from_delta = src_deltas[1]->data;
    const long total = (long)l->batch * l->outputs;
    dn_activate_grad(p->preact, l->output.data, l->batch, l->out_c, l->out_w * l->out_h, p->act, l->delta.data);
    if (in_delta) {
        #pragma omp parallel for simd num_threads(dn_cpu_threads())
        for (long i = 0; i < total; i++) in_delta[i] += l->delta.data[i] * from[i];
    }
    if (from_delta) {
        #pragma omp parallel for simd num_threads(dn_cpu_threads())
        for (long i = 0; i < total; i++) from_delta[i] += l->delta.data[i] * in[i];
    }
    return DN_OK;
}

const dn_kernels DN_CPU(kernels_sam) = {.forward = forward, .backward = backward};
