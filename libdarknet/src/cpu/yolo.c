/* [yolo] on the CPU: the activations, then in training the loss (yolo_loss.c). */
#include <string.h>

#include "../layer_yolo.h"
#include "cpu.h"

/* Per anchor slot: entries 0,1 (x, y) and 4..4+classes get the logistic (not with
   new_coords=1), then x, y <- s*v - (s-1)/2 (spec §3.10). */
static dn_status forward(dn_layer *l, const dn_tensor *const *srcs, dn_tensor *out, dn_ctx *ctx)
{
    (void)out;
    const float *in = srcs[0]->data;
    const yolo *p = l->p;
    const int entries = p->classes + 5, spatial = l->w * l->h;
    const float s = p->scale_x_y, shift = (s - 1) / 2;
    const long planes = (long)l->batch * p->n * entries;
    #pragma omp parallel for num_threads(dn_cpu_threads())
    for (long pl = 0; pl < planes; pl++) {
        const int e = (int)(pl % entries);
        const float *src = in + pl * spatial;
        float *dst = l->output.data + pl * spatial;
        memcpy(dst, src, sizeof(float) * spatial);
        if (!p->new_coords && e != 2 && e != 3) dn_activate_span(dst, spatial, 0.f, DN_ACT_LOGISTIC);
        if (e < 2 && s != 1)
            for (int i = 0; i < spatial; i++) dst[i] = s * dst[i] - shift;
    }
    if (!ctx->training || !ctx->truth.data) return DN_OK;
    return dn_yolo_loss(l, l->output.data, l->delta.data, ctx->truth.data, ctx->truth_size, dn_cpu_threads());
}

/* The loss's delta, unscaled, into the input's (upstream's CPU path, spec D5.5). */
static dn_status backward(dn_layer *l, const dn_tensor *const *srcs, dn_tensor *const *src_deltas, dn_ctx *ctx)
{
    float *in_delta = src_deltas[0]->data;
    if (!in_delta) return DN_OK;
    const long total = (long)l->batch * l->outputs;
    #pragma omp parallel for num_threads(dn_cpu_threads())
    for (long i = 0; i < total; i++) in_delta[i] += l->delta.data[i];
    return DN_OK;
}

const dn_kernels DN_CPU(kernels_yolo) = {.forward = forward, .backward = backward};
