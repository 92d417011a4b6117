/* [scale_channels] on the CPU. */
#include <string.h>

#include "../layer_scale_channels.h"
#include "cpu.h"

/* y[c,i] = act(s[c] * from[c,i]), s[c] = in[c] (scale_wh=0) or in[i] (scale_wh=1). */
static dn_status forward(dn_layer *l, const dn_tensor *const *srcs, dn_tensor *out, dn_ctx *ctx)
{
    (void)out;
    const float *in = srcs[0]->data;
    const scale_channels *p = l->p;
    const float *from = srcs[1]->data;
    const int spatial = l->out_w * l->out_h, c = l->out_c, inputs = l->inputs;
    const long planes = (long)l->batch * c;
    #pragma omp parallel for num_threads(dn_cpu_threads())
    for (long pl = 0; pl < planes; pl++) {
        const long b = pl / c;
        const float *f = from + pl * spatial;
        float *y = l->output.data + pl * spatial;
        if (p->scale_wh) {
            const float *sc = in + b * inputs;
            for (int i = 0; i < spatial; i++) y[i] = sc[i] * f[i];
        } else {
            const float sc = in[b * inputs + pl % c];
            for (int i = 0; i < spatial; i++) y[i] = sc * f[i];
        }
    }
    if (ctx->training && p->preact) memcpy(p->preact, l->output.data, sizeof(float) * l->batch * l->outputs);
    dn_activate(l->output.data, l->batch, c, spatial, p->act);
    return DN_OK;
}

/* With d = delta * act'(y):
     scale_wh=0: in.delta[c] += sum_i d[c,i] * from[c,i];  scale_wh=1: in.delta[i] += sum_c d[c,i] * from[c,i];
     from.delta[c,i] += d[c,i] * s[c or i]. */
static dn_status backward(dn_layer *l, const dn_tensor *const *srcs, dn_tensor *const *src_deltas, dn_ctx *ctx)
{
    const float *in = srcs[0]->data;
    float *in_delta = src_deltas[0]->data;
    const scale_channels *p = l->p;
    const float *from = srcs[1]->data;
    float *from_delta = src_deltas[1]->data;
    const int spatial = l->out_w * l->out_h, c = l->out_c, inputs = l->inputs;
    dn_activate_grad(p->preact, l->output.data, l->batch, c, spatial, p->act, l->delta.data);
    if (in_delta) {
        if (p->scale_wh) {
            #pragma omp parallel for collapse(2) num_threads(dn_cpu_threads())
            for (int b = 0; b < l->batch; b++)
                for (int i = 0; i < spatial; i++) {
                    float sum = 0;
                    for (int k = 0; k < c; k++) {
                        const long j = ((long)b * c + k) * spatial + i;
                        sum += l->delta.data[j] * from[j];
                    }
                    in_delta[(long)b * inputs + i] += sum;
                }
        } else {
            #pragma omp parallel for collapse(2) num_threads(dn_cpu_threads())
            for (int b = 0; b < l->batch; b++)
                for (int k = 0; k < c; k++) {
                    const long base = ((long)b * c + k) * spatial;
                    float sum = 0;
                    for (int i = 0; i < spatial; i++) sum += l->delta.data[base + i] * from[base + i];
                    in_delta[(long)b * inputs + k] += sum;
                }
        }
    }
    if (from_delta) {
        const long planes = (long)l->batch * c;
        #pragma omp parallel for num_threads(dn_cpu_threads())
        for (long pl = 0; pl < planes; pl++) {
            const long b = pl / c;
            const float *d = l->delta.data + pl * spatial;
            float *fd = from_delta + pl * spatial;
            if (p->scale_wh) {
                const float *sc = in + b * inputs;
                for (int i = 0; i < spatial; i++) fd[i] += d[i] * sc[i];
            } else {
                const float sc = in[b * inputs + pl % c];
                for (int i = 0; i < spatial; i++) fd[i] += d[i] * sc;
            }
        }
    }
    return DN_OK;
}

const dn_kernels DN_CPU(kernels_scale_channels) = {.forward = forward, .backward = backward};
