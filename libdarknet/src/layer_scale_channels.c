/* [scale_channels] (spec §1.5, §3.9): the `from` layer's output scaled per channel
   by the current input (1 x 1 x C, scale_wh=0) or per pixel (W x H x 1, scale_wh=1),
   then the activation. The output has the `from` layer's shape. */
#include <string.h>

#include "dn.h"

typedef struct scale_channels {
    int from;           /* absolute index of the scaled layer */
    int scale_wh;
    dn_act act;
    float *preact;      /* pre-activation copy for swish/mish backward */
} scale_channels;

static dn_status parse(dn_layer *l, dn_parse_ctx *ctx)
{
    scale_channels *p = calloc(1, sizeof *p);
    if (!(l->p = p)) return dn_fail(DN_ERR_OOM, "out of memory");
    if (!dn_opt_str(ctx, "from", NULL))
        return dn_parse_fail(ctx, "from= is required: name the layer whose channels are scaled, e.g. from=-4");
    int ref = dn_opt_int(ctx, "from", 0);
    DN_TRY(dn_opt_layer_ref(ctx, "from", ref, &p->from));
    DN_TRY(dn_opt_activation(ctx, "activation", "linear", &p->act));
    p->scale_wh = dn_opt_int(ctx, "scale_wh", 0);
    if (p->scale_wh != 0 && p->scale_wh != 1) return dn_parse_fail(ctx, "scale_wh=%d must be 0 or 1", p->scale_wh);
    const dn_layer *s = &ctx->net->layers[p->from];
    if (s->out_w < 1 || s->out_h < 1 || s->out_c < 1 || s->outputs != s->out_w * s->out_h * s->out_c)
        return dn_parse_fail(ctx, "from=%d (layer %d) must output an image, but its output is %d x %d x %d", ref,
                             p->from, s->out_w, s->out_h, s->out_c);
    if (!p->scale_wh && l->inputs != s->out_c)
        return dn_parse_fail(ctx, "the input has %d values (%d x %d x %d) but needs one scale per channel of from=%d "
                             "(layer %d, %d x %d x %d): expected 1 x 1 x %d",
                             l->inputs, l->w, l->h, l->c, ref, p->from, s->out_w, s->out_h, s->out_c, s->out_c);
    if (p->scale_wh && l->inputs != s->out_w * s->out_h)
        return dn_parse_fail(ctx, "with scale_wh=1 the input must hold one scale per pixel of from=%d (layer %d, "
                             "%d x %d x %d): expected %d x %d x 1, got %d x %d x %d",
                             ref, p->from, s->out_w, s->out_h, s->out_c, s->out_w, s->out_h, l->w, l->h, l->c);
    l->out_w = s->out_w;
    l->out_h = s->out_h;
    l->out_c = s->out_c;
    l->outputs = s->outputs;
    if (ctx->net->info.train && dn_act_needs_input(p->act))
        DN_TRY(dn_alloc_floats(&p->preact, (size_t)l->batch * l->outputs, "pre-activations"));
    return DN_OK;
}

/* y[c,i] = act(s[c] * from[c,i]), s[c] = in[c] (scale_wh=0) or in[i] (scale_wh=1). */
static void forward(dn_layer *l, dn_network *net, const float *in)
{
    const scale_channels *p = l->p;
    const float *from = net->layers[p->from].output;
    const int spatial = l->out_w * l->out_h, c = l->out_c, inputs = l->inputs;
    const long planes = (long)l->batch * c;
    #pragma omp parallel for
    for (long pl = 0; pl < planes; pl++) {
        const long b = pl / c;
        const float *f = from + pl * spatial;
        float *y = l->output + pl * spatial;
        if (p->scale_wh) {
            const float *sc = in + b * inputs;
            for (int i = 0; i < spatial; i++) y[i] = sc[i] * f[i];
        } else {
            const float sc = in[b * inputs + pl % c];
            for (int i = 0; i < spatial; i++) y[i] = sc * f[i];
        }
    }
    if (net->training && p->preact) memcpy(p->preact, l->output, sizeof(float) * l->batch * l->outputs);
    dn_activate(l->output, l->batch, c, spatial, p->act);
}

/* With d = delta * act'(y):
     scale_wh=0: in.delta[c] += sum_i d[c,i] * from[c,i];  scale_wh=1: in.delta[i] += sum_c d[c,i] * from[c,i];
     from.delta[c,i] += d[c,i] * s[c or i]. */
static void backward(dn_layer *l, dn_network *net, const float *in, float *in_delta)
{
    const scale_channels *p = l->p;
    dn_layer *src = &net->layers[p->from];
    const float *from = src->output;
    const int spatial = l->out_w * l->out_h, c = l->out_c, inputs = l->inputs;
    dn_activate_grad(p->preact, l->output, l->batch, c, spatial, p->act, l->delta);
    if (in_delta) {
        if (p->scale_wh) {
            #pragma omp parallel for collapse(2)
            for (int b = 0; b < l->batch; b++)
                for (int i = 0; i < spatial; i++) {
                    float sum = 0;
                    for (int k = 0; k < c; k++) {
                        const long j = ((long)b * c + k) * spatial + i;
                        sum += l->delta[j] * from[j];
                    }
                    in_delta[(long)b * inputs + i] += sum;
                }
        } else {
            #pragma omp parallel for collapse(2)
            for (int b = 0; b < l->batch; b++)
                for (int k = 0; k < c; k++) {
                    const long base = ((long)b * c + k) * spatial;
                    float sum = 0;
                    for (int i = 0; i < spatial; i++) sum += l->delta[base + i] * from[base + i];
                    in_delta[(long)b * inputs + k] += sum;
                }
        }
    }
    if (src->delta) {
        const long planes = (long)l->batch * c;
        #pragma omp parallel for
        for (long pl = 0; pl < planes; pl++) {
            const long b = pl / c;
            const float *d = l->delta + pl * spatial;
            float *fd = src->delta + pl * spatial;
            if (p->scale_wh) {
                const float *sc = in + b * inputs;
                for (int i = 0; i < spatial; i++) fd[i] += d[i] * sc[i];
            } else {
                const float sc = in[b * inputs + pl % c];
                for (int i = 0; i < spatial; i++) fd[i] += d[i] * sc;
            }
        }
    }
}

static void describe(const dn_layer *l, char *buf, size_t n)
{
    snprintf(buf, n, "scale Layer: %d", ((const scale_channels *)l->p)->from);
}

static void free_scale_channels(dn_layer *l)
{
    scale_channels *p = l->p;
    if (p) free(p->preact);
}

const dn_layer_ops dn_layer_scale_channels = {
    .name = "scale_channels", .parse = parse, .forward = forward, .backward = backward, .describe = describe,
    .free = free_scale_channels,
};
