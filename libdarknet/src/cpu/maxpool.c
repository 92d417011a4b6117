/* [maxpool] on the CPU. */
#include <float.h>
#include <string.h>

#include "../layer_maxpool.h"
#include "cpu.h"

/* Output channel g is the max over input channels k = g (mod out_channels) at each pixel. */
static void forward_depth(dn_layer *l, const maxpool *p, const float *in)
{
    const int sp = l->w * l->h;
    #pragma omp parallel for collapse(2) num_threads(dn_cpu_threads())
    for (int b = 0; b < l->batch; b++)
        for (int g = 0; g < l->out_c; g++)
            for (int i = 0; i < sp; i++) {
                float best = -FLT_MAX;
                int arg = -1;
                for (int k = g; k < l->c; k += p->out_channels) {
                    int idx = (b * l->c + k) * sp + i;
                    if (in[idx] > best) { best = in[idx]; arg = idx; }
                }
                int o = (b * l->out_c + g) * sp + i;
                l->output.data[o] = best;
                if (p->argmax) p->argmax[o] = arg;
            }
}

/* Inference (no argmax to record): the window max is separable, so take the max
   over the window's rows into one row, then over its columns. */
static void forward_separable(dn_layer *l, const dn_pool *w, const float *in)
{
    #pragma omp parallel for collapse(2) num_threads(dn_cpu_threads())
    for (int b = 0; b < l->batch; b++)
        for (int k = 0; k < l->c; k++) {
            const float *plane = in + ((size_t)b * l->c + k) * l->h * l->w;
            float *out = l->output.data + ((size_t)b * l->c + k) * l->out_h * l->out_w;
            float row[l->w];
            for (int i = 0; i < l->out_h; i++) {
                int y0, y1, x0, x1;
                dn_pool_span(w, i, w->stride_y, l->h, &y0, &y1);
                for (int x = 0; x < l->w; x++) row[x] = -FLT_MAX;
                for (int y = y0; y < y1; y++) {
                    const float *src = plane + (size_t)y * l->w;
                    #pragma omp simd
                    for (int x = 0; x < l->w; x++) row[x] = src[x] > row[x] ? src[x] : row[x];
                }
                for (int j = 0; j < l->out_w; j++) {
                    dn_pool_span(w, j, w->stride_x, l->w, &x0, &x1);
                    float best = -FLT_MAX;
                    for (int x = x0; x < x1; x++) best = row[x] > best ? row[x] : best;
                    out[i * l->out_w + j] = best;
                }
            }
        }
}

/* The common case, 2x2 windows at stride 2 wholly inside the input: the maximum and, in training,
   its index in the generic loop's scan order (first of equal values), vectorised. */
static int is_2x2_inside(const dn_layer *l, const dn_pool *w)
{
    return w->size == 2 && w->stride_x == 2 && w->stride_y == 2 && w->padding / 2 == 0 && 2 * l->out_w <= l->w &&
           2 * l->out_h <= l->h;
}

static void forward_2x2(dn_layer *l, const maxpool *p, const float *in)
{
    const int iw = l->w, ow = l->out_w, oh = l->out_h;
    #pragma omp parallel for num_threads(dn_cpu_threads())
    for (long pl = 0; pl < (long)l->batch * l->c; pl++) {
        const float *plane = in + pl * l->h * iw;
        float *out = l->output.data + pl * oh * ow;
        int *arg = p->argmax ? p->argmax + pl * oh * ow : NULL;
        for (int i = 0; i < oh; i++) {
            const float *r0 = plane + (long)2 * i * iw, *r1 = r0 + iw;
            const int i0 = (int)(pl * l->h * iw) + 2 * i * iw;
            #pragma omp simd
            for (int j = 0; j < ow; j++) {
                float best = -FLT_MAX;
                int a = -1;
                if (r0[2 * j] > best) { best = r0[2 * j]; a = i0 + 2 * j; }
                if (r0[2 * j + 1] > best) { best = r0[2 * j + 1]; a = i0 + 2 * j + 1; }
                if (r1[2 * j] > best) { best = r1[2 * j]; a = i0 + iw + 2 * j; }
                if (r1[2 * j + 1] > best) { best = r1[2 * j + 1]; a = i0 + iw + 2 * j + 1; }
                out[i * ow + j] = best;
                if (arg) arg[i * ow + j] = a;
            }
        }
    }
}

/* 2x2/2 inference (no argmax) of output rows r0 .. r1 of all the planes: the maximum of each
   pair of input rows, then of each pair of its columns; both loops vectorise (the columns
   through even/odd lane permutes). A row's input is read whole before its output is written. */
static void max_rows(dn_layer *l, const float *in, long r0, long r1)
{
    const int iw = l->w, ow = l->out_w, oh = l->out_h;
    #pragma omp parallel for num_threads(dn_cpu_threads())
    for (long r = r0; r < r1; r++) {
        float rows[2 * ow];
        const float *a = in + r / oh * l->h * iw + 2 * (r % oh) * iw, *b = a + iw;
        float *o = l->output.data + r * ow;
        for (int x = 0; x < 2 * ow; x++) {
            const float v = a[x] > -FLT_MAX ? a[x] : -FLT_MAX;
            rows[x] = b[x] > v ? b[x] : v;
        }
        for (int j = 0; j < ow; j++) o[j] = rows[2 * j + 1] > rows[2 * j] ? rows[2 * j + 1] : rows[2 * j];
    }
}

/* Inference, whose row buffers live on the stack. */
static int row_kernels(const dn_layer *l)
{
    const maxpool *p = l->p;
    return !p->argmax && l->w <= 1 << 14;
}

/* Whether the output may overlay the input (plan.c puts it there where nothing reads the input
   later): 2x2/2 inference windows that tile the map exactly. */
static int overlays_input(const dn_layer *l)
{
    const maxpool *p = l->p;
    return !p->depth && row_kernels(l) && is_2x2_inside(l, &p->win) && 2 * l->out_w == l->w && 2 * l->out_h == l->h;
}

/* Over its own input, output row r (at r * ow) overwrites input row r / 2, which output row r / 4
   reads: runs of rows each at most four times the rows before it go one after another, and within
   a run no write meets a read. */
static void forward_2x2_max(dn_layer *l, const float *in)
{
    const long rows = (long)l->batch * l->c * l->out_h;
    if (in != l->output.data) {
        max_rows(l, in, 0, rows);
        return;
    }
    for (long r0 = 0, r1 = 1; r0 < rows; r0 = r1, r1 = 4 * r1 < rows ? 4 * r1 : rows) max_rows(l, in, r0, r1);
}

static dn_status forward(dn_layer *l, const dn_tensor *const *srcs, dn_tensor *out, dn_ctx *ctx)
{
    (void)out;
    const float *in = srcs[0]->data;
    maxpool *p = l->p;
    if (p->depth) {
        forward_depth(l, p, in);
        return DN_OK;
    }
    const dn_pool *w = &p->win;
    if (is_2x2_inside(l, w)) {
        if (row_kernels(l)) forward_2x2_max(l, in);
        else forward_2x2(l, p, in);
        return DN_OK;
    }
    if (row_kernels(l)) {
        forward_separable(l, w, in);
        return DN_OK;
    }
    #pragma omp parallel for collapse(2) num_threads(dn_cpu_threads())
    for (int b = 0; b < l->batch; b++)
        for (int k = 0; k < l->c; k++) {
            const float *plane = in + ((size_t)b * l->c + k) * l->h * l->w;
            for (int i = 0; i < l->out_h; i++)
                for (int j = 0; j < l->out_w; j++) {
                    float best = -FLT_MAX;
                    int arg = -1;
                    int y0, y1, x0, x1;
                    dn_pool_span(w, i, w->stride_y, l->h, &y0, &y1);
                    dn_pool_span(w, j, w->stride_x, l->w, &x0, &x1);
                    for (int y = y0; y < y1; y++)
                        for (int x = x0; x < x1; x++) {
                            float v = plane[y * l->w + x];
                            if (v > best) { best = v; arg = y * l->w + x; }
                        }
                    size_t o = (((size_t)b * l->c + k) * l->out_h + i) * l->out_w + j;
                    l->output.data[o] = best;
                    if (p->argmax) p->argmax[o] = arg < 0 ? -1 : (int)(((size_t)b * l->c + k) * l->h * l->w) + arg;
                }
        }
    return DN_OK;
}

static dn_status backward(dn_layer *l, const dn_tensor *const *srcs, dn_tensor *const *src_deltas, dn_ctx *ctx)
{
    float *in_delta = src_deltas[0]->data;
    maxpool *p = l->p;
    if (!in_delta) return DN_OK;
    /* an output plane's maxima lie in input planes no other output plane reads */
    const long planes = (long)l->batch * l->out_c, plane = (long)l->out_h * l->out_w;
    #pragma omp parallel for if (planes * plane > 65536) num_threads(dn_cpu_threads())
    for (long pl = 0; pl < planes; pl++)
        for (long i = pl * plane; i < (pl + 1) * plane; i++)
            if (p->argmax[i] >= 0) in_delta[p->argmax[i]] += l->delta.data[i];
    return DN_OK;
}

const dn_kernels DN_CPU(kernels_maxpool) = {.forward = forward, .backward = backward, .overlays_input = overlays_input};
