/* [local_avgpool] (spec §1.5, §3.5, §4.3): mean over the in-image window positions. */
#include "dn.h"

static dn_status parse(dn_layer *l, dn_parse_ctx *ctx)
{
    dn_pool *p = calloc(1, sizeof *p);
    if (!(l->p = p)) return dn_fail(DN_ERR_OOM, "out of memory");
    return dn_pool_parse(l, ctx, p);
}

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

static void forward(dn_layer *l, dn_network *net, const float *in)
{
    (void)net;
    const dn_pool *w = l->p;
    FOR_EACH_WINDOW(l, {
        int ya, yb, xa, xb;
        dn_pool_span(w, i, w->stride_y, l->h, &ya, &yb);
        dn_pool_span(w, j, w->stride_x, l->w, &xa, &xb);
        float sum = 0;
        for (int y = ya; y < yb; y++)
            for (int x = xa; x < xb; x++) sum += in[base + y * l->w + x];
        l->output[o] = ya < yb && xa < xb ? sum / ((yb - ya) * (xb - xa)) : 0;
    })
}

static void backward(dn_layer *l, dn_network *net, const float *in, float *in_delta)
{
    (void)net;
    (void)in;
    const dn_pool *w = l->p;
    if (!in_delta) return;
    /* The gradient of the forward's mean over in-image positions. Upstream divides by
       size^2 even where the window leaves the image (spec §4.3); see README. */
    FOR_EACH_WINDOW(l, {
        int ya, yb, xa, xb;
        dn_pool_span(w, i, w->stride_y, l->h, &ya, &yb);
        dn_pool_span(w, j, w->stride_x, l->w, &xa, &xb);
        if (ya >= yb || xa >= xb) continue;
        const float d = l->delta[o] / ((yb - ya) * (xb - xa));
        for (int y = ya; y < yb; y++)
            for (int x = xa; x < xb; x++) in_delta[base + y * l->w + x] += d;
    })
}

static void describe(const dn_layer *l, char *buf, size_t n) { dn_pool_describe(l, l->p, "avg", buf, n); }

const dn_layer_ops dn_layer_local_avgpool = {
    .name = "local_avgpool", .alias = "local_avg", .parse = parse, .forward = forward, .backward = backward,
    .describe = describe,
};
