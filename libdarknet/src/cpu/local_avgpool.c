/* [local_avgpool] on the CPU. */
#include "cpu.h"

/* Runs the body for every output o of every sample and channel; base is the offset of its input plane. */
#define FOR_EACH_WINDOW(l, ...)                                                                      \
    for (int b = 0; b < (l)->batch; b++)                                                                 \
        for (int k = 0; k < (l)->c; k++)                                                                 \
            for (int i = 0; i < (l)->out_h; i++)                                                         \
                for (int j = 0; j < (l)->out_w; j++) {                                                   \
                    const size_t o = (((size_t)b * (l)->c + k) * (l)->out_h + i) * (l)->out_w + j;       \
                    const size_t base = ((size_t)b * (l)->c + k) * (l)->h * (l)->w;                      \
                    __VA_ARGS__                                                                          \
                }

static dn_status forward(dn_layer *l, const dn_tensor *const *srcs, dn_tensor *out, dn_ctx *ctx)
{
    (void)out;
    const float *in = srcs[0]->data;
    const dn_pool *w = l->p;
    FOR_EACH_WINDOW(l, {
        int ya, yb, xa, xb;
        dn_pool_span(w, i, w->stride_y, l->h, &ya, &yb);
        dn_pool_span(w, j, w->stride_x, l->w, &xa, &xb);
        float sum = 0;
        for (int y = ya; y < yb; y++)
            for (int x = xa; x < xb; x++) sum += in[base + y * l->w + x];
        l->output.data[o] = ya < yb && xa < xb ? sum / ((yb - ya) * (xb - xa)) : 0;
    })
    return DN_OK;
}

static dn_status backward(dn_layer *l, const dn_tensor *const *srcs, dn_tensor *const *src_deltas, dn_ctx *ctx)
{
    float *in_delta = src_deltas[0]->data;
    const dn_pool *w = l->p;
    if (!in_delta) return DN_OK;
    /* The gradient of the forward's mean over in-image positions. Upstream divides by
       size^2 even where the window leaves the image (spec §4.3); see README. */
    FOR_EACH_WINDOW(l, {
        int ya, yb, xa, xb;
        dn_pool_span(w, i, w->stride_y, l->h, &ya, &yb);
        dn_pool_span(w, j, w->stride_x, l->w, &xa, &xb);
        if (ya >= yb || xa >= xb) continue;
        const float d = l->delta.data[o] / ((yb - ya) * (xb - xa));
        for (int y = ya; y < yb; y++)
            for (int x = xa; x < xb; x++) in_delta[base + y * l->w + x] += d;
    })
    return DN_OK;
}

const dn_kernels DN_CPU(kernels_local_avgpool) = {.forward = forward, .backward = backward};
