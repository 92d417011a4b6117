/* [avgpool] (spec §1.5, §3.5, §4.3): global average over each channel. */
#include "dn.h"

static dn_status parse(dn_layer *l, dn_parse_ctx *ctx)
{
    DN_TRY(dn_require_image(ctx, l));
    l->out_w = l->out_h = 1;
    l->out_c = l->c;
    l->outputs = l->c;
    return DN_OK;
}

static void forward(dn_layer *l, dn_network *net, const float *in)
{
    (void)net;
    const int sp = l->w * l->h;
    #pragma omp parallel for
    for (int bc = 0; bc < l->batch * l->c; bc++) {
        const float *p = in + (size_t)bc * sp;
        float sum = 0;
        for (int i = 0; i < sp; i++) sum += p[i];
        l->output[bc] = sum / sp;
    }
}

static void backward(dn_layer *l, dn_network *net, const float *in, float *in_delta)
{
    (void)net;
    (void)in;
    if (!in_delta) return;
    const int sp = l->w * l->h;
    #pragma omp parallel for
    for (int bc = 0; bc < l->batch * l->c; bc++) {
        const float d = l->delta[bc] / sp;
        float *p = in_delta + (size_t)bc * sp;
        for (int i = 0; i < sp; i++) p[i] += d;
    }
}

static void describe(const dn_layer *l, char *buf, size_t n)
{
    snprintf(buf, n, "avg                          %4d x%4d x%4d ->   %4d", l->w, l->h, l->c, l->outputs);
}

const dn_layer_ops dn_layer_avgpool = {
    .name = "avgpool", .alias = "avg", .parse = parse, .forward = forward, .backward = backward,
    .describe = describe,
};
