/* [shortcut] (spec §1.5, §2.2, §3.9, §4.3, §4.5): the previous layer's output plus
   the outputs of the `from` layers, optionally weighted (one weight per input, or
   per input and channel) and the weights optionally normalised (relu / softmax),
   then the activation. A `from` layer with a different channel count contributes
   only the overlapping channel prefix. */
#include <math.h>
#include <string.h>

#include "layer_shortcut.h"

static dn_status parse(dn_layer *l, dn_parse_ctx *ctx)
{
    shortcut *p = calloc(1, sizeof *p);
    if (!(l->p = p)) return dn_fail(DN_ERR_OOM, "out of memory");
    DN_TRY(dn_require_image(ctx, l));
    const char *list = dn_opt_str(ctx, "from", NULL);
    if (!list)
        return dn_parse_fail(ctx, "from= is required: name the layer(s) to add to the previous one, e.g. from=-3");
    int cap = 1;
    for (const char *s = list; *s; s++) cap += *s == ',';
    if (cap > MAX_SOURCES) return dn_parse_fail(ctx, "from= lists more than %d layers", MAX_SOURCES);
    int refs[MAX_SOURCES];
    int n = dn_opt_ints(ctx, "from", refs, cap);
    if (n < 0) return DN_ERR_CFG;
    if (n == 0) return dn_parse_fail(ctx, "from=%s lists no layer; give at least one layer index", list);
    p->src_c = malloc(sizeof *p->src_c * n);
    if (!p->src_c) return dn_fail(DN_ERR_OOM, "out of memory");
    p->n = n;
    int inputs[MAX_SOURCES + 1] = {ctx->index - 1};
    for (int i = 0; i < n; i++) DN_TRY(dn_opt_layer_ref(ctx, "from", refs[i], &inputs[i + 1]));
    DN_TRY(dn_layer_set_inputs(l, inputs, n + 1));

    DN_TRY(dn_opt_activation(ctx, "activation", "linear", &p->act));
    const char *wt = dn_opt_str(ctx, "weights_type", "none");
    if (strcmp(wt, "none") == 0) p->wtype = WT_NONE;
    else if (strcmp(wt, "per_feature") == 0 || strcmp(wt, "per_layer") == 0) p->wtype = WT_PER_FEATURE;
    else if (strcmp(wt, "per_channel") == 0) p->wtype = WT_PER_CHANNEL;
    else return dn_parse_fail(ctx, "unknown weights_type '%s'; use none, per_feature, per_layer or per_channel", wt);
    const char *wn = dn_opt_str(ctx, "weights_normalization", "none");
    if (strcmp(wn, "none") == 0) p->wnorm = WN_NONE;
    else if (strcmp(wn, "relu") == 0 || strcmp(wn, "avg_relu") == 0) p->wnorm = WN_RELU;
    else if (strcmp(wn, "softmax") == 0) p->wnorm = WN_SOFTMAX;
    else return dn_parse_fail(ctx, "unknown weights_normalization '%s'; use none, relu, avg_relu or softmax", wn);

    for (int i = 0; i < n; i++) {
        const dn_layer *s = &ctx->layers[inputs[i + 1]];
        if (s->out_w != l->w || s->out_h != l->h)
            return dn_parse_fail(ctx, "from=%d (layer %d) outputs %d x %d x %d (w x h x c) but the previous layer "
                                 "outputs %d x %d x %d: a shortcut needs the same width and height",
                                 refs[i], inputs[i + 1], s->out_w, s->out_h, s->out_c, l->w, l->h, l->c);
        if (s->outputs != s->out_w * s->out_h * s->out_c)
            return dn_parse_fail(ctx, "from=%d (layer %d) does not output an image", refs[i], inputs[i + 1]);
        p->src_c[i] = s->out_c;
    }
    l->out_w = l->w;
    l->out_h = l->h;
    l->out_c = l->c;
    l->outputs = l->w * l->h * l->c;
    l->bflops = (double)l->outputs * n / 1e9;

    if (p->wtype != WT_NONE) {
        p->nweights = (n + 1) * per_input(p, l->c);
        /* every input starts with weight 1: an unweighted sum (or an even mix once normalised) */
        DN_TRY(dn_alloc_floats(&p->weights, p->nweights, "shortcut weights"));
        for (int i = 0; i < p->nweights; i++) p->weights[i] = 1;
        if (p->wnorm != WN_NONE) DN_TRY(dn_alloc_floats(&p->norm, p->nweights, "shortcut weights"));
        if (l->train) DN_TRY(dn_alloc_floats(&p->weight_updates, p->nweights, "shortcut weight updates"));
    }
    if (ctx->train && dn_act_needs_input(p->act))
        DN_TRY(dn_alloc_floats(&p->preact, (size_t)l->batch * l->outputs, "pre-activations"));
    return DN_OK;
}

static size_t n_weights(const dn_layer *l) { return (size_t)((const shortcut *)l->p)->nweights; }

static void read_weights(dn_layer *l, dn_reader *r)
{
    shortcut *p = l->p;
    if (p->nweights) dn_read_floats(r, p->weights, p->nweights);
}

static void write_weights(const dn_layer *l, dn_writer *w)
{
    const shortcut *p = l->p;
    if (p->nweights) dn_write_floats(w, p->weights, p->nweights);
}

static float *param(dn_layer *l, const char *name, float **delta, size_t *count)
{
    shortcut *p = l->p;
    if (!p->nweights || strcmp(name, "weights") != 0) return NULL;
    *delta = p->weight_updates;
    *count = p->nweights;
    return p->weights;
}

/* Upstream prints, after the layer line, one " (w x h x c) + (w x h x c) " line per
   `from` layer whose channel count differs; it is appended here after a newline. */
static void describe(const dn_layer *l, char *buf, size_t n)
{
    const shortcut *p = l->p;
    size_t pos = 0;
    if (n) buf[0] = 0;
    dn_appendf(buf, n, &pos, "Shortcut Layer: ");
    for (int i = 0; i < p->n; i++) dn_appendf(buf, n, &pos, "%d, ", l->in_idx[i + 1]);
    dn_appendf(buf, n, &pos, " wt = %d, wn = %d, outputs:%4d x%4d x%4d %5.3f BF", p->wtype, p->wnorm, l->out_w, l->out_h,
           l->out_c, l->bflops);
    for (int i = 0; i < p->n; i++)
        if (p->src_c[i] != l->out_c)
            dn_appendf(buf, n, &pos, "\n (%4d x%4d x%4d) + (%4d x%4d x%4d) ", l->out_w, l->out_h, l->out_c, l->out_w,
                   l->out_h, p->src_c[i]);
}

static void free_shortcut(dn_layer *l)
{
    shortcut *p = l->p;
    if (!p) return;
    free(p->src_c);
    free(p->weights);
    free(p->weight_updates);
    free(p->norm);
    free(p->fused);
    free(p->preact);
}

static void attrs(const dn_layer *l, dn_attrs *a)
{
    static const char *const types[] = {"none", "per_feature", "per_channel"};
    static const char *const norms[] = {"none", "relu", "softmax"};
    const shortcut *p = l->p;
    dn_attr_str(a, "weights_type", types[p->wtype]);
    dn_attr_str(a, "weights_normalization", norms[p->wnorm]);
    dn_attr_str(a, "activation", dn_act_name(p->act));
}

const dn_layer_ops dn_layer_shortcut = {
    .name = "shortcut", .parse = parse, .n_weights = n_weights, .read_weights = read_weights,
    .write_weights = write_weights,
    .param = param, .describe = describe, .attrs = attrs, .free = free_shortcut,
};
