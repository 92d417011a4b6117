/* [connected] (spec §1.5, §3.6, §4.3): y = W x (+ batch norm) + b, then the activation.
   Unlike upstream (spec §4.5), its weights are updated when training. */
#include <math.h>
#include <string.h>

#include "layer_connected.h"

static dn_status parse(dn_layer *l, dn_parse_ctx *ctx)
{
    connected *p = calloc(1, sizeof *p);
    if (!(l->p = p)) return dn_fail(DN_ERR_OOM, "out of memory");
    int outputs = dn_opt_int(ctx, "output", 1);
    l->batch_normalize = dn_opt_int(ctx, "batch_normalize", 0);
    DN_TRY(dn_opt_activation(ctx, "activation", "logistic", &p->act));
    if (outputs < 1) return dn_parse_fail(ctx, "output=%d must be >= 1", outputs);
    if ((double)outputs * l->inputs > 1 << 30)
        return dn_parse_fail(ctx, "%d x %d weights are too many", outputs, l->inputs);
    l->out_w = l->out_h = 1;
    l->out_c = l->outputs = outputs;
    l->bflops = 2.0 * l->inputs * outputs / 1e9;
    const size_t nw = (size_t)outputs * l->inputs;
    DN_TRY(dn_alloc_floats(&p->weights, nw, "connected weights"));
    DN_TRY(dn_alloc_floats(&p->biases, outputs, "connected biases"));
    const float scale = sqrtf(2.f / l->inputs);
    for (size_t i = 0; i < nw && !ctx->estimate; i++) p->weights[i] = scale * dn_rng_uniform(ctx->rng, -1, 1);
    /* a layer frozen by stopbackward still normalises with batch statistics in a training pass */
    if (l->batch_normalize) DN_TRY(dn_bn_init(&p->bn, outputs, 1, l->batch, ctx->train, .01f));
    if (l->train) {
        DN_TRY(dn_alloc_floats(&p->weight_updates, nw, "connected weight updates"));
        DN_TRY(dn_alloc_floats(&p->bias_updates, outputs, "connected bias updates"));
        if (dn_act_needs_input(p->act))
            DN_TRY(dn_alloc_floats(&p->preact, (size_t)l->batch * outputs, "pre-activations"));
    }
    return DN_OK;
}

static size_t n_weights(const dn_layer *l)
{
    return (size_t)l->outputs * (l->inputs + 1 + (l->batch_normalize ? 3 : 0));
}

static void read_weights(dn_layer *l, dn_reader *r)
{
    connected *p = l->p;
    dn_read_floats(r, p->biases, l->outputs);
    dn_read_floats(r, p->weights, (size_t)l->outputs * l->inputs);
    if (l->batch_normalize && !l->dontloadscales) {
        dn_read_floats(r, p->bn.scales, l->outputs);
        dn_read_floats(r, p->bn.mean, l->outputs);
        dn_read_floats(r, p->bn.variance, l->outputs);
    }
}

static void write_weights(const dn_layer *l, dn_writer *w)
{
    const connected *p = l->p;
    dn_write_floats(w, p->biases, l->outputs);
    dn_write_floats(w, p->weights, (size_t)l->outputs * l->inputs);
    if (l->batch_normalize) {
        dn_write_floats(w, p->bn.scales, l->outputs);
        dn_write_floats(w, p->bn.mean, l->outputs);
        dn_write_floats(w, p->bn.variance, l->outputs);
    }
}

static float *param(dn_layer *l, const char *name, float **delta, size_t *count)
{
    connected *p = l->p;
    *count = l->outputs;
    if (strcmp(name, "biases") == 0) {
        *delta = p->bias_updates;
        return p->biases;
    }
    if (strcmp(name, "weights") == 0) {
        *delta = p->weight_updates;
        *count = (size_t)l->outputs * l->inputs;
        return p->weights;
    }
    return l->batch_normalize ? dn_bn_param(&p->bn, name, delta) : NULL;
}

static void describe(const dn_layer *l, char *buf, size_t n)
{
    snprintf(buf, n, "connected                            %4d  ->  %4d", l->inputs, l->outputs);
}

static void free_connected(dn_layer *l)
{
    connected *p = l->p;
    if (!p) return;
    free(p->weights);
    free(p->biases);
    dn_bn_free(&p->bn);
    free(p->weight_updates);
    free(p->bias_updates);
    free(p->preact);
}

static void attrs(const dn_layer *l, dn_attrs *a)
{
    dn_attr_int(a, "output", l->outputs);
    dn_attr_str(a, "activation", dn_act_name(((const connected *)l->p)->act));
}

const dn_layer_ops dn_layer_connected = {
    .name = "connected", .alias = "conn", .parse = parse, .n_weights = n_weights, .read_weights = read_weights,
    .write_weights = write_weights,
    .param = param, .describe = describe, .attrs = attrs, .free = free_connected,
};
