/* [route] on the CPU. */
#include <string.h>

#include "../layer_route.h"
#include "cpu.h"

#define COPY_CHUNK (1L << 15) /* floats per thread's piece of a copy: batch 1 still copies on every thread */

static dn_status forward(dn_layer *l, const dn_tensor *const *srcs, dn_tensor *out, dn_ctx *ctx)
{
    (void)ctx;
    const route *p = l->p;
    long offset = 0;
    for (int i = 0; i < l->n_in; i++) {
        const long total = (long)(srcs[i]->n / l->batch), part = total / p->groups;
        const float *src = srcs[i]->data + (long)p->group_id * part;
        /* none where the input wrote its slice itself (plan.c, only where the layer sees one image) */
        const long chunks = src == out->data + offset ? 0 : (part + COPY_CHUNK - 1) / COPY_CHUNK;
        #pragma omp parallel for collapse(2) if (l->batch * chunks > 1) num_threads(dn_cpu_threads())
        for (int b = 0; b < l->batch; b++)
            for (long c = 0; c < chunks; c++) {
                const long at = c * COPY_CHUNK, len = part - at < COPY_CHUNK ? part - at : COPY_CHUNK;
                memcpy(out->data + (long)b * l->outputs + offset + at, src + (long)b * total + at, sizeof(float) * len);
            }
        offset += part;
    }
    return DN_OK;
}

/* Each input's slice of delta += the matching slice of this layer's delta. */
static dn_status backward(dn_layer *l, const dn_tensor *const *srcs, dn_tensor *const *src_deltas, dn_ctx *ctx)
{
    (void)ctx;
    const route *p = l->p;
    long offset = 0;
    for (int i = 0; i < l->n_in; i++) {
        const long total = (long)(srcs[i]->n / l->batch), part = total / p->groups;
        if (src_deltas[i]->data) {
            float *dst = src_deltas[i]->data + (long)p->group_id * part;
            #pragma omp parallel for collapse(2) num_threads(dn_cpu_threads())
            for (int b = 0; b < l->batch; b++)
                for (long j = 0; j < part; j++)
                    dst[(long)b * total + j] += l->delta.data[(long)b * l->outputs + offset + j];
        }
        offset += part;
    }
    return DN_OK;
}

const dn_kernels DN_CPU(kernels_route) = {.forward = forward, .backward = backward};
