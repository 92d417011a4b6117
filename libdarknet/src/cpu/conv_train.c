/* The GEMM parts of a convolution's training passes (spec §4.3): the forward product on the raw
   weights, the weight gradients and the input deltas. With at least as many images as threads,
   each thread takes whole images with single-threaded GEMMs (a batch of small per-image GEMMs
   split inside each GEMM spends more time waking threads than multiplying), its own column
   buffer and, backward, its own weight-gradient sum, added up at the end. */
#include <cblas.h>
#include <omp.h>
#include <pthread.h>
#include <string.h>

#include "../layer_convolutional.h"
#include "cpu.h"

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

static void blas_single_threaded(void) { scipy_openblas_set_num_threads(1); }

static void gemm1(int trans_a, int trans_b, int m, int n, int k, const float *a, int lda, const float *b, int ldb,
                  float beta, float *c, int ldc)
{
    scipy_cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m,
                      n, k, 1.f, a, lda, b, ldb, beta, c, ldc);
}

static int is_direct(const conv *p)
{
    return p->g.size == 1 && p->g.stride_x == 1 && p->g.stride_y == 1 && p->g.dilation == 1 && p->g.pad == 0;
}

/* One image's output (k x spatial floats of scratch in col). */
static void image_forward(const conv *p, const float *in, const float *weights, float *out, int in_plane,
                          int spatial, float *col, int threads)
{
    const int ng = p->n / p->groups, k = p->g.c * p->g.size * p->g.size;
    for (int g = 0; g < p->groups; g++) {
        const float *cols = in + (size_t)g * p->g.c * in_plane, *w = weights + (size_t)g * ng * k;
        if (!is_direct(p)) {
            dn_im2col(cols, &p->g, col);
            cols = col;
        }
        float *o = out + (size_t)g * ng * spatial;
        if (threads > 1) dn_gemm(0, 0, ng, spatial, k, 1, w, k, cols, spatial, 0, o, spatial);
        else gemm1(0, 0, ng, spatial, k, w, k, cols, spatial, 0.f, o, spatial);
    }
}

/* One image's weight gradient (added into dw) and input delta (added into in_delta, when
   not NULL); col: k x spatial floats of scratch. */
static void image_backward(const conv *p, const float *in, const float *delta, const float *weights, float *dw,
                           float *in_delta, int in_plane, int spatial, float *col, int threads)
{
    const int ng = p->n / p->groups, k = p->g.c * p->g.size * p->g.size;
    for (int g = 0; g < p->groups; g++) {
        const size_t in_off = (size_t)g * p->g.c * in_plane;
        const float *dg = delta + (size_t)g * ng * spatial, *w = weights + (size_t)g * ng * k;
        const float *cols = in + in_off;
        if (!is_direct(p)) {
            dn_im2col(in + in_off, &p->g, col);
            cols = col;
        }
        if (dw) {
            if (threads > 1) dn_gemm(0, 1, ng, k, spatial, 1, dg, spatial, cols, spatial, 1, dw + (size_t)g * ng * k, k);
            else gemm1(0, 1, ng, k, spatial, dg, spatial, cols, spatial, 1, dw + (size_t)g * ng * k, k);
        }
        if (!in_delta) continue;
        /* a 1x1 convolution's column matrix is its input: its delta is added in place */
        float *dcol = is_direct(p) ? in_delta + in_off : col;
        const float beta = is_direct(p) ? 1.f : 0.f;
        if (threads > 1) dn_gemm(1, 0, k, spatial, ng, 1, w, k, dg, spatial, beta, dcol, spatial);
        else gemm1(1, 0, k, spatial, ng, w, k, dg, spatial, beta, dcol, spatial);
        if (!is_direct(p)) dn_col2im_add(col, &p->g, in_delta + in_off);
    }
}

/* Floats of scratch for `threads` threads: a column buffer each, a weight-gradient sum for each but the first. */
static size_t scratch_floats(const conv *p, int spatial, int threads)
{
    const size_t col = is_direct(p) ? 0 : (size_t)p->g.c * p->g.size * p->g.size * spatial;
    return threads > 1 ? threads * col + (size_t)(threads - 1) * p->nweights : col;
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
    const int threads = dn_cpu_threads();
    float *ws;
    if (threads == 1 || batch < threads) { /* few images: threads split each GEMM */
        DN_TRY(scratch(ctx, scratch_floats(p, spatial, 1), &ws));
        for (int b = 0; b < batch; b++)
            image_forward(p, in + (size_t)b * inputs, weights, out + (size_t)b * outputs, in_plane, spatial, ws,
                          threads);
        return DN_OK;
    }
    const size_t col = scratch_floats(p, spatial, 1);
    DN_TRY(scratch(ctx, threads * col, &ws));
    #pragma omp parallel num_threads(threads)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        dn_cpu_set_threads(1); /* im2col inside runs on this thread alone */
        for (int b = batch * t / nt; b < batch * (t + 1) / nt; b++)
            image_forward(p, in + (size_t)b * inputs, weights, out + (size_t)b * outputs, in_plane, spatial,
                          ws + t * col, 1);
    }
    dn_cpu_set_threads(threads);
    return DN_OK;
}

dn_status dn_conv_backward_gemms(const conv *p, int batch, const float *in, int inputs, const float *delta,
                                 int outputs, const float *weights, float *dw, float *in_delta, int in_plane,
                                 int spatial, dn_ctx *ctx)
{
    pthread_once(&blas_once, blas_single_threaded);
    const int threads = dn_cpu_threads();
    float *ws;
    if (threads == 1 || batch < threads) { /* few images: threads split each GEMM */
        DN_TRY(scratch(ctx, scratch_floats(p, spatial, 1), &ws));
        for (int b = 0; b < batch; b++)
            image_backward(p, in + (size_t)b * inputs, delta + (size_t)b * outputs, weights, dw,
                           in_delta ? in_delta + (size_t)b * inputs : NULL, in_plane, spatial, ws, threads);
        return DN_OK;
    }
    DN_TRY(scratch(ctx, scratch_floats(p, spatial, threads), &ws));
    const size_t col = scratch_floats(p, spatial, 1), nw = p->nweights;
    float *sums = ws + threads * col; /* weight-gradient sums of threads 1.. */
    #pragma omp parallel num_threads(threads)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        dn_cpu_set_threads(1); /* im2col/col2im inside run on this thread alone */
        float *my_dw = dw && t ? sums + (t - 1) * nw : dw;
        if (dw && t) memset(my_dw, 0, sizeof(float) * nw);
        /* contiguous runs of images, as even as the batch allows */
        for (int b = batch * t / nt; b < batch * (t + 1) / nt; b++)
            image_backward(p, in + (size_t)b * inputs, delta + (size_t)b * outputs, weights, my_dw,
                           in_delta ? in_delta + (size_t)b * inputs : NULL, in_plane, spatial, ws + t * col, 1);
        if (dw) {
            #pragma omp barrier
            #pragma omp for schedule(static)
            for (size_t i = 0; i < nw; i++) {
                float s = 0;
                for (int u = 1; u < nt; u++) s += sums[(u - 1) * nw + i];
                dw[i] += s;
            }
        }
    }
    dn_cpu_set_threads(threads);
    return DN_OK;
}
