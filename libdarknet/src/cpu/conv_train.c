/* The GEMM parts of a convolution's training passes (spec §4.3): the forward product on the raw
   weights, the weight gradients and the input deltas. With at least as many images as threads,
   each thread takes whole images with single-threaded GEMMs (a batch of small per-image GEMMs
   split inside each GEMM spends more time waking threads than multiplying), its own column
   buffer and, backward, its own weight-gradient sum, added up at the end.
   3x3 stride-1 pad-1 layers run the forward product and the input delta (a 3x3 stride-1 pad-1
   convolution of the output delta with the filters rotated and transposed) as Winograd
   F(m x m, 3x3) where dn_wino_train_tile finds it faster, on weights transformed in each pass
   (they change every update), many images' tiles per GEMM. */
#include <cblas.h>
#include <omp.h>
#include <pthread.h>
#include <string.h>

#include "../layer_convolutional.h"
#include "cpu.h"

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

static void blas_single_threaded(void) { scipy_openblas_set_num_threads(1); }

/* A GEMM split across `threads`, or in this thread alone. */
static void gemm(int threads, int trans_a, int trans_b, int m, int n, int k, const float *a, int lda, const float *b,
                 int ldb, float beta, float *c, int ldc)
{
    if (threads > 1) dn_gemm(trans_a, trans_b, m, n, k, 1, a, lda, b, ldb, beta, c, ldc);
    else scipy_cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                           m, n, k, 1.f, a, lda, b, ldb, beta, c, ldc);
}

static int is_direct(const conv *p)
{
    return p->g.size == 1 && p->g.stride_x == 1 && p->g.stride_y == 1 && p->g.dilation == 1 && p->g.pad == 0;
}

/* The Winograd tile size of this layer's forward product and input delta, 0 for im2col + GEMM. */
static int wino_tile(const conv *p)
{
    const dn_conv_geom *g = &p->g;
    if (g->size != 3 || g->stride_x != 1 || g->stride_y != 1 || g->dilation != 1 || g->pad != 1 || p->groups != 1)
        return 0;
    return dn_wino_train_tile(g->c, p->n, g->h, g->w);
}

/* Images [*b0, *b1) of thread t of nt. */
static void thread_images(int batch, int t, int nt, int *b0, int *b1)
{
    *b0 = batch * t / nt; /* contiguous runs, as even as the batch allows */
    *b1 = batch * (t + 1) / nt;
}

/* Output rows per im2col block: a column matrix of about 512 KiB stays in cache between im2col
   and its GEMM (a large map's whole one would go out to memory and back). */
static int block_rows(const conv *p, int k)
{
    const int rows = (int)(((size_t)1 << 17) / ((size_t)k * p->g.out_w));
    return rows < 1 ? 1 : rows > p->g.out_h ? p->g.out_h : rows;
}

/* One image's output (k x spatial floats of scratch in col). */
static void image_forward(const conv *p, const float *in, const float *weights, float *out, int in_plane,
                          int spatial, float *col, int threads)
{
    const int ng = p->n / p->groups, k = p->g.c * p->g.size * p->g.size, oh = p->g.out_h, ow = p->g.out_w;
    const int step = block_rows(p, k);
    for (int g = 0; g < p->groups; g++) {
        const float *im = in + (size_t)g * p->g.c * in_plane, *w = weights + (size_t)g * ng * k;
        float *o = out + (size_t)g * ng * spatial;
        if (is_direct(p)) {
            gemm(threads, 0, 0, ng, spatial, k, w, k, im, spatial, 0.f, o, spatial);
            continue;
        }
        for (int y0 = 0; y0 < oh; y0 += step) {
            const int y1 = y0 + step < oh ? y0 + step : oh, len = (y1 - y0) * ow;
            dn_im2col_rows(im, &p->g, y0, y1, col, len);
            gemm(threads, 0, 0, ng, len, k, w, k, col, len, 0.f, o + (size_t)y0 * ow, spatial);
        }
    }
}

/* One image's weight gradient (added into dw) and input delta (added into in_delta, when
   not NULL); col: k x spatial floats of scratch. */
static void image_backward(const conv *p, const float *in, const float *delta, const float *weights, float *dw,
                           float *in_delta, int in_plane, int spatial, float *col, int threads)
{
    const int ng = p->n / p->groups, k = p->g.c * p->g.size * p->g.size, oh = p->g.out_h, ow = p->g.out_w;
    const int step = block_rows(p, k);
    for (int g = 0; g < p->groups && (dw || in_delta); g++) {
        const size_t in_off = (size_t)g * p->g.c * in_plane;
        const float *dg = delta + (size_t)g * ng * spatial, *w = weights + (size_t)g * ng * k;
        float *dwg = dw ? dw + (size_t)g * ng * k : NULL;
        if (dw && is_direct(p)) gemm(threads, 0, 1, ng, k, spatial, dg, spatial, in + in_off, spatial, 1.f, dwg, k);
        else if (dw)
            for (int y0 = 0; y0 < oh; y0 += step) {
                const int y1 = y0 + step < oh ? y0 + step : oh, len = (y1 - y0) * ow;
                dn_im2col_rows(in + in_off, &p->g, y0, y1, col, len);
                gemm(threads, 0, 1, ng, k, len, dg + (size_t)y0 * ow, spatial, col, len, 1.f, dwg, k);
            }
        if (!in_delta) continue;
        /* a 1x1 convolution's column matrix is its input: its delta is added in place */
        float *dcol = is_direct(p) ? in_delta + in_off : col;
        const float beta = is_direct(p) ? 1.f : 0.f;
        gemm(threads, 1, 0, k, spatial, ng, w, k, dg, spatial, beta, dcol, spatial);
        if (!is_direct(p)) dn_col2im_add(col, &p->g, in_delta + in_off);
    }
}

/* Floats of one image's column buffer. */
static size_t col_floats(const conv *p, int spatial)
{
    return is_direct(p) ? 0 : (size_t)p->g.c * p->g.size * p->g.size * spatial;
}

/* The network's workspace, grown once (not per iteration) when the threads need more than
   the forward pass asked for. */
static dn_status scratch(dn_ctx *ctx, size_t n, float **out)
{
    if (ctx->workspace.n < n) { /* the old one stays when this fails: inference still has its scratch */
        dn_tensor grown = {0};
        DN_TRY(ctx->backend->alloc(&grown, n, "the training convolutions' per-thread workspace"));
        ctx->backend->release(&ctx->workspace);
        ctx->workspace = grown;
    }
    *out = ctx->workspace.data;
    return DN_OK;
}

dn_status dn_conv_forward_gemms(const conv *p, int batch, const float *in, int inputs, const float *weights,
                                float *out, int outputs, int in_plane, int spatial, dn_ctx *ctx)
{
    pthread_once(&blas_once, blas_single_threaded);
    const int threads = dn_cpu_threads(), m = wino_tile(p);
    const int split = threads > 1 && batch >= threads; /* else few images: threads split each GEMM */
    const int workers = split ? threads : 1, most = (batch + workers - 1) / workers;
    const size_t nu = m ? dn_wino_weights_size(p->n, p->g.c, m) : 0;
    const size_t each = m ? dn_wino_images_workspace(p->g.c, p->n, p->g.h, p->g.w, m, most)
                          : col_floats(p, spatial);
    float *ws;
    DN_TRY(scratch(ctx, nu + workers * each, &ws));
    if (m) dn_wino_weights(weights, NULL, p->n, p->g.c, m, ws);
    #pragma omp parallel num_threads(workers)
    {
        const int t = omp_get_thread_num();
        int b0, b1;
        thread_images(batch, t, workers, &b0, &b1);
        if (split) dn_cpu_set_threads(1); /* im2col and transforms inside run on this thread alone */
        float *my_ws = ws + nu + t * each;
        if (m)
            dn_wino_conv3x3_images(in + (size_t)b0 * inputs, b1 - b0, inputs, p->g.c, p->g.h, p->g.w, p->n, m, ws, 0,
                                   out + (size_t)b0 * outputs, outputs, my_ws);
        else
            for (int b = b0; b < b1; b++)
                image_forward(p, in + (size_t)b * inputs, weights, out + (size_t)b * outputs, in_plane, spatial,
                              my_ws, split ? 1 : threads);
    }
    dn_cpu_set_threads(threads);
    return DN_OK;
}

dn_status dn_conv_backward_gemms(const conv *p, int batch, const float *in, int inputs, const float *delta,
                                 int outputs, const float *weights, float *dw, float *in_delta, int in_plane,
                                 int spatial, dn_ctx *ctx)
{
    pthread_once(&blas_once, blas_single_threaded);
    const int threads = dn_cpu_threads(), m = in_delta ? wino_tile(p) : 0;
    const int split = threads > 1 && batch >= threads; /* else few images: threads split each GEMM */
    const int workers = split ? threads : 1, most = (batch + workers - 1) / workers;
    const size_t nu = m ? dn_wino_weights_size(p->g.c, p->n, m) : 0, nw = p->nweights;
    const size_t col = col_floats(p, spatial);
    const size_t each = col + (m ? dn_wino_images_workspace(p->n, p->g.c, p->g.h, p->g.w, m, most) : 0);
    float *ws;
    DN_TRY(scratch(ctx, nu + workers * each + (split && dw ? (threads - 1) * nw : 0), &ws));
    float *sums = ws + nu + workers * each; /* weight-gradient sums of threads 1.. */
    if (m) dn_wino_weights_backward(weights, p->n, p->g.c, m, ws);
    #pragma omp parallel num_threads(workers)
    {
        const int t = omp_get_thread_num();
        int b0, b1;
        thread_images(batch, t, workers, &b0, &b1);
        if (split) dn_cpu_set_threads(1); /* im2col/col2im and transforms inside run on this thread alone */
        float *my_dw = dw && t ? sums + (t - 1) * nw : dw, *my_ws = ws + nu + t * each;
        if (dw && t) memset(my_dw, 0, sizeof(float) * nw);
        for (int b = b0; b < b1; b++)
            image_backward(p, in + (size_t)b * inputs, delta + (size_t)b * outputs, weights, my_dw,
                           in_delta && !m ? in_delta + (size_t)b * inputs : NULL, in_plane, spatial, my_ws,
                           split ? 1 : threads);
        if (m) /* the input delta: the output delta's convolution with the rotated filters, added */
            dn_wino_conv3x3_images(delta + (size_t)b0 * outputs, b1 - b0, outputs, p->n, p->g.h, p->g.w, p->g.c, m,
                                   ws, 1, in_delta + (size_t)b0 * inputs, inputs, my_ws + col);
        if (split && dw) {
            #pragma omp barrier
            #pragma omp for schedule(static)
            for (size_t i = 0; i < nw; i++) {
                float s = 0;
                for (int u = 1; u < workers; u++) s += sums[(u - 1) * nw + i];
                dw[i] += s;
            }
        }
    }
    dn_cpu_set_threads(threads);
    return DN_OK;
}
