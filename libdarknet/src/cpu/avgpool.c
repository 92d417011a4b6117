/* [avgpool] on the CPU. */

#include "../dn.h"
#include "cpu.h"

static dn_status forward(dn_layer *l, const dn_tensor *const *srcs, dn_tensor *out, dn_ctx *ctx)
{
    (void)out;
    const float *in = srcs[0]->data;
    const int sp = l->w * l->h;
    #pragma omp parallel for num_threads(dn_cpu_threads())
    for (int bc = 0; bc < l->batch * l->c; bc++) {
        const float *p = in + (size_t)bc * sp;
        float sum = 0;
        for (int i = 0; i < sp; i++) sum += p[i];
        l->output.data[bc] = sum / sp;
    }
    return DN_OK;
}

static dn_status backward(dn_layer *l, const dn_tensor *const *srcs, dn_tensor *const *src_deltas, dn_ctx *ctx)
{
    float *in_delta = src_deltas[0]->data;
    if (!in_delta) return DN_OK;
    const int sp = l->w * l->h;
    #pragma omp parallel for num_threads(dn_cpu_threads())
    for (int bc = 0; bc < l->batch * l->c; bc++) {
        const float d = l->delta.data[bc] / sp;
        float *p = in_delta + (size_t)bc * sp;
        for (int i = 0; i < sp; i++) p[i] += d;
    }
    return DN_OK;
}

const dn_kernels DN_CPU(kernels_avgpool) = {.forward = forward, .backward = backward};
