/* [activation] (spec §1.5, §3.9, §4.3): y = act(x), shape unchanged. */
#include <string.h>

#include "dn.h"

typedef struct activation {
    dn_act act;
    int c, spatial;     /* how dn_activate sees one sample: channels x pixels */
} activation;

static dn_status parse(dn_layer *l, dn_parse_ctx *ctx)
{
    activation *p = calloc(1, sizeof *p);
    if (!(l->p = p)) return dn_fail(DN_ERR_OOM, "out of memory");
    DN_TRY(dn_opt_activation(ctx, "activation", "linear", &p->act));
    l->out_w = l->w;
    l->out_h = l->h;
    l->out_c = l->c;
    l->outputs = l->inputs;
    if (l->c > 0 && (long)l->w * l->h * l->c == l->inputs) {
        p->c = l->c;
        p->spatial = l->w * l->h;
    } else { /* a flat vector (after connected/softmax): one pixel of `inputs` channels */
        p->c = l->inputs;
        p->spatial = 1;
    }
    return DN_OK;
}

static void forward(dn_layer *l, dn_network *net, const float *in)
{
    (void)net;
    const activation *p = l->p;
    memcpy(l->output, in, sizeof(float) * l->batch * l->outputs);
    dn_activate(l->output, l->batch, p->c, p->spatial, p->act);
}

/* delta <- delta * act'(y) (the input x is the previous layer's output, still intact),
   then prev.delta += delta. Upstream's CPU path assigns (copies) instead of adding; we
   accumulate like its GPU path, so a previous layer with other consumers keeps their
   contributions. */
static void backward(dn_layer *l, dn_network *net, const float *in, float *in_delta)
{
    (void)net;
    const activation *p = l->p;
    dn_activate_grad(in, l->output, l->batch, p->c, p->spatial, p->act, l->delta);
    if (!in_delta) return;
    const long total = (long)l->batch * l->outputs;
    #pragma omp parallel for simd
    for (long i = 0; i < total; i++) in_delta[i] += l->delta[i];
}

static void describe(const dn_layer *l, char *buf, size_t n) { snprintf(buf, n, "Activation Layer: %d inputs", l->inputs); }

const dn_layer_ops dn_layer_activation = {
    .name = "activation", .parse = parse, .forward = forward, .backward = backward, .describe = describe,
};
