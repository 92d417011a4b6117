/* Dense linear algebra on the CPU: GEMM through OpenBLAS (scipy-openblas32), im2col/col2im, SGD. */
#include <cblas.h>
#include <pthread.h>
#include <string.h>

#include "cpu.h"

/* One thread pool: OpenBLAS runs single-threaded and OpenMP splits each GEMM
   into blocks. Two pools (OpenBLAS's and OpenMP's spinning workers) fight for
   the cores and were several times slower. */
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

static void blas_single_threaded(void) { scipy_openblas_set_num_threads(1); }

static void gemm_block(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                       const float *b, int ldb, float beta, float *c, int ldc)
{
    scipy_cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m,
                      n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void dn_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
             const float *b, int ldb, float beta, float *c, int ldc)
{
    pthread_once(&blas_once, blas_single_threaded);
    const int threads = dn_cpu_threads();
    if (threads == 1 || (double)m * n * k < 1 << 18) {
        gemm_block(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    /* split the longer output dimension into equal blocks, multiples of 16 */
    const int split_n = n >= m, len = split_n ? n : m;
    const int block = ((len + threads - 1) / threads + 15) / 16 * 16;
    #pragma omp parallel for num_threads(threads)
    for (int start = 0; start < len; start += block) {
        const int size = start + block > len ? len - start : block;
        if (split_n)
            gemm_block(trans_a, trans_b, m, size, k, alpha, a, lda, trans_b ? b + (size_t)start * ldb : b + start,
                       ldb, beta, c + start, ldc);
        else
            gemm_block(trans_a, trans_b, size, n, k, alpha, trans_a ? a + start : a + (size_t)start * lda, lda, b,
                       ldb, beta, c + (size_t)start * ldc, ldc);
    }
}

void dn_gemm_serial(int m, int n, int k, const float *a, int lda, const float *b, int ldb, float *c, int ldc)
{
    pthread_once(&blas_once, blas_single_threaded);
    gemm_block(0, 0, m, n, k, 1, a, lda, b, ldb, 0, c, ldc);
}

/* im2col_row where output rows are input rows (stride 1, out_w == w): output rows oy0 .. oy1
   of one tap read input rows oy + dy, columns x + x0 inside [lo, hi) of each row. The in-range
   rows are one copy shifted by x0 (a memcpy per row costs more than the row on small maps), its
   columns that wrapped into a neighbouring row then zeroed. */
static void same_width_rows(const float *plane, const dn_conv_geom *g, int dy, int x0, int lo, int hi, int oy0,
                            int oy1, float *dst)
{
    const int w = g->w;
    int a = oy0 > -dy ? oy0 : -dy, b = oy1 < g->h - dy ? oy1 : g->h - dy; /* rows [a, b) read the input */
    if (a > oy1) a = oy1;
    if (b < a) b = a;
    memset(dst, 0, sizeof(float) * (a - oy0) * w);
    float *d = dst + (long)(a - oy0) * w;
    const int rows = b - a;
    if (rows) {
        memcpy(d + lo, plane + (long)(a + dy) * w + x0 + lo, sizeof(float) * ((long)(rows - 1) * w + hi - lo));
        for (int q = 0; q < lo; q++) /* column-wise: a per-row loop would become a memset call per row */
            for (int r = 0; r < rows; r++) d[(long)r * w + q] = 0.f;
        for (int q = hi; q < w; q++)
            for (int r = 0; r < rows; r++) d[(long)r * w + q] = 0.f;
    }
    memset(d + (long)rows * w, 0, sizeof(float) * (oy1 - b) * w);
}

typedef float v16f __attribute__((vector_size(64), aligned(4)));
typedef int v16i __attribute__((vector_size(64)));

/* d[i] = src[2 i] for i < n (stride-2 convolutions): two vectors in, their even lanes out
   (compilers turn the strided loop into one load per element). Reads no further than
   src[2 n - 2]. */
static void take_even(const float *src, int n, float *d)
{
    int i = 0;
    for (; i + 17 <= n; i += 16) {
        v16f a, b, r;
        memcpy(&a, src + 2 * i, sizeof a);
        memcpy(&b, src + 2 * i + 16, sizeof b);
#ifdef __clang__
        r = __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
#else
        r = __builtin_shuffle(a, b, (v16i){0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30});
#endif
        memcpy(d + i, &r, sizeof r);
    }
    for (; i < n; i++) d[i] = src[2 * i];
}

/* Row (ci, ky, kx) of the column matrix for output rows oy0 .. oy1: for each output
   pixel, the input value under that kernel tap, 0 in the padding (spec §3.2). */
static void im2col_row(const float *im, const dn_conv_geom *g, int row, int oy0, int oy1, float *dst)
{
    const int k2 = g->size * g->size, pad = g->pad * g->dilation;
    const int ci = row / k2, ky = (row % k2) / g->size, kx = row % g->size;
    const float *plane = im + (long)ci * g->h * g->w;
    /* output columns [lo, hi) read inside the image; the rest is padding */
    const int x0 = kx * g->dilation - pad, sx = g->stride_x;
    int lo = x0 < 0 ? (-x0 + sx - 1) / sx : 0;
    int hi = g->w - x0 <= 0 ? 0 : (g->w - x0 - 1) / sx + 1;
    if (hi > g->out_w) hi = g->out_w;
    if (lo > hi) lo = hi;
    if (sx == 1 && g->stride_y == 1 && g->out_w == g->w && lo < hi) {
        same_width_rows(plane, g, ky * g->dilation - pad, x0, lo, hi, oy0, oy1, dst);
        return;
    }
    for (int oy = oy0; oy < oy1; oy++) {
        const int iy = oy * g->stride_y - pad + ky * g->dilation;
        float *d = dst + (oy - oy0) * g->out_w;
        if (iy < 0 || iy >= g->h) {
            memset(d, 0, sizeof(float) * g->out_w);
            continue;
        }
        const float *src = plane + (long)iy * g->w + x0;
        memset(d, 0, sizeof(float) * lo);
        if (sx == 1) memcpy(d + lo, src + lo, sizeof(float) * (hi - lo));
        else if (sx == 2) take_even(src + 2 * lo, hi - lo, d + lo);
        else for (int ox = lo; ox < hi; ox++) d[ox] = src[ox * sx];
        memset(d + hi, 0, sizeof(float) * (g->out_w - hi));
    }
}

void dn_im2col(const float *im, const dn_conv_geom *g, float *col, int ld)
{
    #pragma omp parallel for num_threads(dn_cpu_threads())
    for (int row = 0; row < g->c * g->size * g->size; row++) im2col_row(im, g, row, 0, g->out_h, col + (long)row * ld);
}

void dn_im2col_rows(const float *im, const dn_conv_geom *g, int oy0, int oy1, float *col, int ld)
{
    for (int row = 0; row < g->c * g->size * g->size; row++) im2col_row(im, g, row, oy0, oy1, col + (long)row * ld);
}

int dn_col_stride(int len) { return ((len + 15) / 16 | 1) * 16; }

void dn_col2im_add(const float *col, const dn_conv_geom *g, float *im)
{
    const int k2 = g->size * g->size, spatial = g->out_h * g->out_w;
    const int pad = g->pad * g->dilation;
    /* parallel over input planes: taps of one plane never touch another */
    #pragma omp parallel for num_threads(dn_cpu_threads())
    for (int ci = 0; ci < g->c; ci++) {
        float *plane = im + (long)ci * g->h * g->w;
        for (int t = 0; t < k2; t++) {
            const int ky = t / g->size, kx = t % g->size;
            const float *src = col + ((long)ci * k2 + t) * spatial;
            /* output columns [lo, hi) land inside the image (as in dn_im2col) */
            const int x0 = kx * g->dilation - pad, sx = g->stride_x;
            int lo = x0 < 0 ? (-x0 + sx - 1) / sx : 0;
            int hi = g->w - x0 <= 0 ? 0 : (g->w - x0 - 1) / sx + 1;
            if (hi > g->out_w) hi = g->out_w;
            for (int oy = 0; oy < g->out_h; oy++) {
                const int iy = oy * g->stride_y - pad + ky * g->dilation;
                if (iy < 0 || iy >= g->h) continue;
                float *row = plane + (long)iy * g->w;
                const float *s = src + oy * g->out_w;
                if (sx == 1) {
                    #pragma omp simd
                    for (int ox = lo; ox < hi; ox++) row[ox + x0] += s[ox];
                } else {
                    for (int ox = lo; ox < hi; ox++) row[ox * sx + x0] += s[ox];
                }
            }
        }
    }
}

void dn_sgd(float *w, float *u, size_t n, const dn_update *up, float lr, int decay)
{
    const float d = decay ? up->decay * up->batch : 0.f, step = lr / up->batch;
    #pragma omp parallel for num_threads(dn_cpu_threads())
    for (size_t i = 0; i < n; i++) {
        u[i] -= d * w[i];
        w[i] += step * u[i];
        u[i] *= up->momentum;
    }
}
