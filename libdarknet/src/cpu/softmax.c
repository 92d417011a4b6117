/* [softmax] on the CPU. */
#include <math.h>

#include "../layer_softmax.h"
#include "cpu.h"

static dn_status forward(dn_layer *l, const dn_tensor *const *srcs, dn_tensor *out, dn_ctx *ctx)
{
    (void)out;
    const float *in = srcs[0]->data;
    const softmax *p = l->p;
    const int n = l->inputs / p->groups;
    #pragma omp parallel for num_threads(dn_cpu_threads())
    for (int bg = 0; bg < l->batch * p->groups; bg++) {
        const float *x = in + (size_t)bg * n;
        float *y = l->output.data + (size_t)bg * n;
        float m = x[0], sum = 0;
        for (int i = 1; i < n; i++) m = fmaxf(m, x[i]);
        for (int i = 0; i < n; i++) {
            y[i] = (float)exp((double)x[i] / p->temperature - (double)m / p->temperature);
            sum += y[i];
        }
        for (int i = 0; i < n; i++) y[i] /= sum;
    }
    if (!ctx->training || !ctx->truth.data || p->noloss) return DN_OK;
    double cost = 0;
    for (int i = 0; i < l->batch * l->outputs; i++) {
        const float t = ctx->truth.data[i];
        l->delta.data[i] = t - l->output.data[i];
        if (t != 0) cost += -log(l->output.data[i]);
    }
    l->cost = cost;
    return DN_OK;
}

static dn_status backward(dn_layer *l, const dn_tensor *const *srcs, dn_tensor *const *src_deltas, dn_ctx *ctx)
{
    float *in_delta = src_deltas[0]->data;
    if (!in_delta) return DN_OK;
    for (int i = 0; i < l->batch * l->outputs; i++) in_delta[i] += l->delta.data[i];
    return DN_OK;
}

const dn_kernels DN_CPU(kernels_softmax) = {.forward = forward, .backward = backward};
