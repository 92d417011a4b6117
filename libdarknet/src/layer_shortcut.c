/* [shortcut] (spec §1.5, §2.2, §3.9, §4.3, §4.5): the previous layer's output plus
   the outputs of the `from` layers, optionally weighted (one weight per input, or
   per input and channel) and the weights optionally normalised (relu / softmax),
   then the activation. A `from` layer with a different channel count contributes
   only the overlapping channel prefix. */
#include <math.h>
#include <string.h>

#include "dn.h"

#define MAX_SOURCES 1024

enum { WT_NONE, WT_PER_FEATURE, WT_PER_CHANNEL };   /* printed as wt = %d */
enum { WN_NONE, WN_RELU, WN_SOFTMAX };              /* printed as wn = %d */

typedef struct shortcut {
    int n;              /* number of `from` layers */
    int *idx;           /* their absolute indices */
    int *src_c;         /* their channel counts (for the console line) */
    int wtype, wnorm;
    int nweights;       /* 0, n+1 or (n+1)*c; layout [input][channel], input 0 = previous layer */
    dn_act act;
    float *weights;         /* raw weights: saved, loaded, updated */
    float *weight_updates;  /* training */
    float *norm;            /* scratch: weights normalised for the current pass */
    float *fused;           /* pre-normalised weights of a fused network (spec §3.9 quirk) */
    float *preact;          /* pre-activation copy for swish/mish backward */
} shortcut;

static int per_input(const shortcut *p, int c) { return p->wtype == WT_PER_CHANNEL ? c : 1; }

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
    p->idx = malloc(sizeof *p->idx * n);
    p->src_c = malloc(sizeof *p->src_c * n);
    if (!p->idx || !p->src_c) return dn_fail(DN_ERR_OOM, "out of memory");
    p->n = n;
    for (int i = 0; i < n; i++) DN_TRY(dn_opt_layer_ref(ctx, "from", refs[i], &p->idx[i]));

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
        const dn_layer *s = &ctx->net->layers[p->idx[i]];
        if (s->out_w != l->w || s->out_h != l->h)
            return dn_parse_fail(ctx, "from=%d (layer %d) outputs %d x %d x %d (w x h x c) but the previous layer "
                                 "outputs %d x %d x %d: a shortcut needs the same width and height",
                                 refs[i], p->idx[i], s->out_w, s->out_h, s->out_c, l->w, l->h, l->c);
        if (s->outputs != s->out_w * s->out_h * s->out_c)
            return dn_parse_fail(ctx, "from=%d (layer %d) does not output an image", refs[i], p->idx[i]);
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
    if (ctx->net->info.train && dn_act_needs_input(p->act))
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

/* Normalise over the n+1 inputs, separately for each channel (spec §3.9).
   `floor` is the lower clamp of the relu variant: 0, or 0.001 when fusing. */
static void normalize(const shortcut *p, int c, const float *w, float *out, float floor)
{
    const int per = per_input(p, c), m = p->n + 1;
    #pragma omp parallel for if (per > 64)
    for (int ch = 0; ch < per; ch++) {
        float sum = 1e-4f;
        if (p->wnorm == WN_RELU) {
            for (int k = 0; k < m; k++) sum += fmaxf(w[k * per + ch], floor);
            for (int k = 0; k < m; k++) out[k * per + ch] = fmaxf(w[k * per + ch], floor) / sum;
        } else {
            float mx = w[ch];
            for (int k = 1; k < m; k++) mx = fmaxf(mx, w[k * per + ch]);
            for (int k = 0; k < m; k++) sum += expf(w[k * per + ch] - mx);
            for (int k = 0; k < m; k++) out[k * per + ch] = expf(w[k * per + ch] - mx) / sum;
        }
    }
}

/* Fused networks use weights normalised once, with upstream's max(w, 0.001) for the
   relu variant (spec §3.9, Appendix C #12); the raw weights stay for saving. */
static void fuse(dn_layer *l)
{
    shortcut *p = l->p;
    if (!p->nweights || p->wnorm == WN_NONE) return;
    if (!p->fused && !(p->fused = dn_floats(p->nweights))) return; /* fall back to normalising each pass */
    normalize(p, l->c, p->weights, p->fused, p->wnorm == WN_RELU ? .001f : 0.f);
}

/* The weights the current pass uses (NULL = all 1). */
static const float *effective_weights(dn_layer *l, const dn_network *net)
{
    shortcut *p = l->p;
    if (!p->nweights) return NULL;
    if (p->wnorm == WN_NONE) return p->weights;
    if (net->info.fused && !net->training && p->fused) return p->fused;
    normalize(p, l->c, p->weights, p->norm, 0.f);
    return p->norm;
}

static void forward(dn_layer *l, dn_network *net, const float *in)
{
    shortcut *p = l->p;
    const float *w = effective_weights(l, net);
    const int spatial = l->out_w * l->out_h, per = per_input(p, l->c), outputs = l->outputs;
    const long total = (long)l->batch * outputs;
    if (!w) {
        memcpy(l->output, in, sizeof(float) * total);
    } else {
        #pragma omp parallel for
        for (long j = 0; j < total; j++) {
            const int i = (int)(j % outputs);
            l->output[j] = w[per == 1 ? 0 : i / spatial] * in[j];
        }
    }
    for (int k = 0; k < p->n; k++) {
        const dn_layer *s = &net->layers[p->idx[k]];
        const int m = s->outputs < outputs ? s->outputs : outputs; /* overlapping channel prefix */
        const float *wk = w ? w + (long)(k + 1) * per : NULL;
        #pragma omp parallel for collapse(2)
        for (int b = 0; b < l->batch; b++)
            for (int i = 0; i < m; i++) {
                const float v = s->output[(long)b * s->outputs + i];
                l->output[(long)b * outputs + i] += wk ? wk[per == 1 ? 0 : i / spatial] * v : v;
            }
    }
    if (net->training && p->preact) memcpy(p->preact, l->output, sizeof(float) * total);
    dn_activate(l->output, l->batch, l->out_c, spatial, p->act);
}

/* Sum over the batch of delta * x restricted to the first m values of each sample,
   into upd[0] (one weight) or upd[ch] (per channel). */
static void weight_grad(const float *delta, int outputs, const float *x, int x_stride, int m, int batch,
                        int spatial, int per, float *upd)
{
    if (per == 1) {
        double acc = 0;
        #pragma omp parallel for collapse(2) reduction(+ : acc)
        for (int b = 0; b < batch; b++)
            for (int i = 0; i < m; i++) acc += delta[(long)b * outputs + i] * x[(long)b * x_stride + i];
        upd[0] += (float)acc;
        return;
    }
    const int channels = m / spatial;
    #pragma omp parallel for
    for (int ch = 0; ch < channels; ch++) {
        float acc = 0;
        for (int b = 0; b < batch; b++) {
            const float *d = delta + (long)b * outputs + (long)ch * spatial;
            const float *v = x + (long)b * x_stride + (long)ch * spatial;
            for (int i = 0; i < spatial; i++) acc += d[i] * v[i];
        }
        upd[ch] += acc;
    }
}

/* delta <- delta * act'; prev.delta += w0 * delta; from_k.delta += w_k * delta on the
   overlapping prefix; weight_updates += delta * input. The gradient through the weight
   normalisation is not taken (spec §4.3): the normalised weights scale the deltas, the
   raw weights receive d(loss)/d(normalised weight). */
static void backward(dn_layer *l, dn_network *net, const float *in, float *in_delta)
{
    shortcut *p = l->p;
    const int spatial = l->out_w * l->out_h, per = per_input(p, l->c), outputs = l->outputs;
    const long total = (long)l->batch * outputs;
    dn_activate_grad(p->preact, l->output, l->batch, l->out_c, spatial, p->act, l->delta);
    /* the forward of this pass left the normalised weights in p->norm */
    const float *w = !p->nweights ? NULL : p->wnorm == WN_NONE ? p->weights : p->norm;
    if (p->weight_updates) {
        weight_grad(l->delta, outputs, in, outputs, outputs, l->batch, spatial, per, p->weight_updates);
        for (int k = 0; k < p->n; k++) {
            const dn_layer *s = &net->layers[p->idx[k]];
            const int m = s->outputs < outputs ? s->outputs : outputs;
            weight_grad(l->delta, outputs, s->output, s->outputs, m, l->batch, spatial, per,
                        p->weight_updates + (long)(k + 1) * per);
        }
    }
    if (in_delta) {
        #pragma omp parallel for
        for (long j = 0; j < total; j++) {
            const int i = (int)(j % outputs);
            in_delta[j] += w ? w[per == 1 ? 0 : i / spatial] * l->delta[j] : l->delta[j];
        }
    }
    for (int k = 0; k < p->n; k++) {
        dn_layer *s = &net->layers[p->idx[k]];
        if (!s->delta) continue;
        const int m = s->outputs < outputs ? s->outputs : outputs;
        const float *wk = w ? w + (long)(k + 1) * per : NULL;
        #pragma omp parallel for collapse(2)
        for (int b = 0; b < l->batch; b++)
            for (int i = 0; i < m; i++) {
                const float d = l->delta[(long)b * outputs + i];
                s->delta[(long)b * s->outputs + i] += wk ? wk[per == 1 ? 0 : i / spatial] * d : d;
            }
    }
}

static void update(dn_layer *l, const dn_update *u)
{
    shortcut *p = l->p;
    if (!p->nweights || !p->weight_updates) return;
    dn_sgd(p->weights, p->weight_updates, p->nweights, u, u->learning_rate * l->lr_mult, 1);
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
    for (int i = 0; i < p->n; i++) dn_appendf(buf, n, &pos, "%d, ", p->idx[i]);
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
    free(p->idx);
    free(p->src_c);
    free(p->weights);
    free(p->weight_updates);
    free(p->norm);
    free(p->fused);
    free(p->preact);
}

const dn_layer_ops dn_layer_shortcut = {
    .name = "shortcut", .parse = parse, .n_weights = n_weights, .read_weights = read_weights,
    .write_weights = write_weights, .fuse = fuse, .forward = forward, .backward = backward, .update = update,
    .param = param, .describe = describe, .free = free_shortcut,
};
