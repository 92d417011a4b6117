/* [dropout] (spec §1.5, §4.3): identity at inference; in training it works in
   place on the previous layer's buffers. */
#include "dn.h"

typedef struct dropout {
    float probability;
    float *rand; /* the draws of the last training forward */
} dropout;

static const char *const ignored_keys[] = {"dropblock", "dropblock_size_rel", "dropblock_size_abs", NULL};

static dn_status parse(dn_layer *l, dn_parse_ctx *ctx)
{
    dropout *p = calloc(1, sizeof *p);
    if (!(l->p = p)) return dn_fail(DN_ERR_OOM, "out of memory");
    dn_opt_accept(ctx, ignored_keys);
    p->probability = dn_opt_float(ctx, "probability", .2f);
    if (p->probability < 0 || p->probability >= 1)
        return dn_parse_fail(ctx, "probability=%g must be in [0, 1)", p->probability);
    l->out_w = l->w;
    l->out_h = l->h;
    l->out_c = l->c;
    l->outputs = l->inputs;
    /* a layer frozen by stopbackward still drops in a training pass */
    if (ctx->net->info.train) DN_TRY(dn_alloc_floats(&p->rand, (size_t)l->batch * l->inputs, "dropout draws"));
    return DN_OK;
}

static void forward(dn_layer *l, dn_network *net, const float *in)
{
    (void)in; /* in == l->output: the layer runs in place */
    dropout *p = l->p;
    if (!net->training) return;
    const float keep = 1.f / (1.f - p->probability);
    for (int i = 0; i < l->batch * l->inputs; i++) {
        p->rand[i] = dn_rng_uniform(&net->rng, 0, 1);
        l->output[i] = p->rand[i] < p->probability ? 0 : l->output[i] * keep;
    }
}

static void backward(dn_layer *l, dn_network *net, const float *in, float *in_delta)
{
    (void)net;
    (void)in;
    dropout *p = l->p;
    if (!in_delta) return;
    const float keep = 1.f / (1.f - p->probability);
    for (int i = 0; i < l->batch * l->inputs; i++) in_delta[i] = p->rand[i] < p->probability ? 0 : in_delta[i] * keep;
}

static void describe(const dn_layer *l, char *buf, size_t n)
{
    const dropout *p = l->p;
    snprintf(buf, n, "dropout    p = %.3f        %4d  ->   %4d", p->probability, l->inputs, l->outputs);
}

static void free_dropout(dn_layer *l)
{
    dropout *p = l->p;
    if (p) free(p->rand);
}

const dn_layer_ops dn_layer_dropout = {
    .name = "dropout", .in_place = 1, .parse = parse, .forward = forward, .backward = backward,
    .describe = describe, .free = free_dropout,
};
