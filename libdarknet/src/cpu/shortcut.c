/* [shortcut] on the CPU. */
#include <math.h>
#include <string.h>

#include "../layer_shortcut.h"
#include "cpu.h"

/* Normalise over the n+1 inputs, separately for each channel (spec §3.9).
   `floor` is the lower clamp of the relu variant: 0, or 0.001 when fusing. */
static void normalize(const shortcut *p, int c, const float *w, float *out, float floor)
{
    const int per = per_input(p, c), m = p->n + 1;
    #pragma omp parallel for if (per > 64) num_threads(dn_cpu_threads())
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
static dn_status prepare(dn_layer *l, dn_ctx *ctx)
{
    (void)ctx;
    shortcut *p = l->p;
    if (!p->nweights || p->wnorm == WN_NONE) return DN_OK;
    if (!p->fused && !(p->fused = dn_floats(p->nweights))) return DN_OK; /* fall back to normalising each pass */
    normalize(p, l->c, p->weights, p->fused, p->wnorm == WN_RELU ? .001f : 0.f);
    return DN_OK;
}

/* The weights the current pass uses (NULL = all 1). */
static const float *effective_weights(dn_layer *l, const dn_ctx *ctx)
{
    shortcut *p = l->p;
    if (!p->nweights) return NULL;
    if (p->wnorm == WN_NONE) return p->weights;
    if (ctx->prepared && !ctx->training && p->fused) return p->fused;
    normalize(p, l->c, p->weights, p->norm, 0.f);
    return p->norm;
}

/* Elements of a source of `n` floats per image that fall in output plane `ch` (its overlap
   with the output is a prefix of each image). */
static int overlap(long n, int ch, int spatial)
{
    const long left = n - (long)ch * spatial;
    return left <= 0 ? 0 : left < spatial ? (int)left : spatial;
}

/* out = w0 in + sum_k w_k from_k over each source's overlapping prefix, one output plane at
   a time: in and the first source are read in the same pass as out is written (w = 1
   without weights: the same sums as without the multiplies). */
static dn_status forward(dn_layer *l, const dn_tensor *const *srcs, dn_tensor *out, dn_ctx *ctx)
{
    (void)out;
    const float *in = srcs[0]->data;
    shortcut *p = l->p;
    const float *w = effective_weights(l, ctx);
    const int spatial = l->out_w * l->out_h, per = per_input(p, l->c), c = l->out_c;
    const long total = (long)l->batch * l->outputs;
    #pragma omp parallel for num_threads(dn_cpu_threads())
    for (long pl = 0; pl < (long)l->batch * c; pl++) {
        const int b = (int)(pl / c), ch = (int)(pl % c), wi = per == 1 ? 0 : ch;
        float *o = l->output.data + pl * spatial;
        const float *x = in + pl * spatial, w0 = w ? w[wi] : 1.f;
        int covered = 0;
        if (p->n) {
            const long n1 = (long)(srcs[1]->n / l->batch);
            const float *s1 = srcs[1]->data + b * n1 + (long)ch * spatial, w1 = w ? w[per + wi] : 1.f;
            covered = overlap(n1, ch, spatial);
            for (int i = 0; i < covered; i++) o[i] = w0 * x[i] + w1 * s1[i];
        }
        for (int i = covered; i < spatial; i++) o[i] = w0 * x[i];
        for (int k = 2; k <= p->n; k++) {
            const long nk = (long)(srcs[k]->n / l->batch);
            const float *sk = srcs[k]->data + b * nk + (long)ch * spatial, wk = w ? w[(long)k * per + wi] : 1.f;
            for (int i = 0, m = overlap(nk, ch, spatial); i < m; i++) o[i] += wk * sk[i];
        }
    }
    if (ctx->training && p->preact) memcpy(p->preact, l->output.data, sizeof(float) * total);
    dn_activate(l->output.data, l->batch, l->out_c, spatial, p->act);
    return DN_OK;
}

/* Sum over the batch of delta * x restricted to the first m values of each sample,
   into upd[0] (one weight) or upd[ch] (per channel). */
static void weight_grad(const float *delta, int outputs, const float *x, int x_stride, int m, int batch,
                        int spatial, int per, float *upd)
{
    if (per == 1) {
        double acc = 0;
        #pragma omp parallel for collapse(2) reduction(+ : acc) num_threads(dn_cpu_threads())
        for (int b = 0; b < batch; b++)
            for (int i = 0; i < m; i++) acc += delta[(long)b * outputs + i] * x[(long)b * x_stride + i];
        upd[0] += (float)acc;
        return;
    }
    const int channels = m / spatial;
    #pragma omp parallel for num_threads(dn_cpu_threads())
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
static dn_status backward(dn_layer *l, const dn_tensor *const *srcs, dn_tensor *const *src_deltas, dn_ctx *ctx)
{
    const float *in = srcs[0]->data;
    float *in_delta = src_deltas[0]->data;
    shortcut *p = l->p;
    const int spatial = l->out_w * l->out_h, per = per_input(p, l->c), outputs = l->outputs;
    const long total = (long)l->batch * outputs;
    dn_activate_grad(p->preact, l->output.data, l->batch, l->out_c, spatial, p->act, l->delta.data);
    /* the forward of this pass left the normalised weights in p->norm */
    const float *w = !p->nweights ? NULL : p->wnorm == WN_NONE ? p->weights : p->norm;
    if (p->weight_updates) {
        weight_grad(l->delta.data, outputs, in, outputs, outputs, l->batch, spatial, per, p->weight_updates);
        for (int k = 0; k < p->n; k++) {
            const int src_outputs = (int)(srcs[k + 1]->n / l->batch);
            const int m = src_outputs < outputs ? src_outputs : outputs;
            weight_grad(l->delta.data, outputs, srcs[k + 1]->data, src_outputs, m, l->batch, spatial, per,
                        p->weight_updates + (long)(k + 1) * per);
        }
    }
    if (in_delta) {
        #pragma omp parallel for num_threads(dn_cpu_threads())
        for (long j = 0; j < total; j++) {
            const int i = (int)(j % outputs);
            in_delta[j] += w ? w[per == 1 ? 0 : i / spatial] * l->delta.data[j] : l->delta.data[j];
        }
    }
    for (int k = 0; k < p->n; k++) {
        float *src_delta = src_deltas[k + 1]->data;
        if (!src_delta) continue;
        const int src_outputs = (int)(srcs[k + 1]->n / l->batch);
        const int m = src_outputs < outputs ? src_outputs : outputs;
        const float *wk = w ? w + (long)(k + 1) * per : NULL;
        #pragma omp parallel for collapse(2) num_threads(dn_cpu_threads())
        for (int b = 0; b < l->batch; b++)
            for (int i = 0; i < m; i++) {
                const float d = l->delta.data[(long)b * outputs + i];
                src_delta[(long)b * src_outputs + i] += wk ? wk[per == 1 ? 0 : i / spatial] * d : d;
            }
    }
    return DN_OK;
}

static dn_status update(dn_layer *l, const dn_update *u, dn_ctx *ctx)
{
    (void)ctx;
    shortcut *p = l->p;
    if (!p->nweights || !p->weight_updates) return DN_OK;
    dn_sgd(p->weights, p->weight_updates, p->nweights, u, u->learning_rate * l->lr_mult, 1);
    return DN_OK;
}

const dn_kernels DN_CPU(kernels_shortcut) = {.prepare = prepare, .forward = forward, .backward = backward, .update = update};
