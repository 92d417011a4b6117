/* Dense linear algebra: GEMM through OpenBLAS (scipy-openblas32), im2col/col2im. */
#include <cblas.h>

#include "dn.h"

void dn_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
             const float *b, int ldb, float beta, float *c, int ldc)
{
    scipy_cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                      m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void dn_set_threads(int threads)
{
    if (threads <= 0) return;
    scipy_openblas_set_num_threads(threads);
#ifdef _OPENMP
    extern void omp_set_num_threads(int);
    omp_set_num_threads(threads);
#endif
}

/* Row (ci, ky, kx) of the column matrix holds, for each output pixel, the input
   value under that kernel tap, 0 in the padding (spec §3.2). */
void dn_im2col(const float *im, const dn_conv_geom *g, float *col)
{
    const int k2 = g->size * g->size, spatial = g->out_h * g->out_w;
    const int pad = g->pad * g->dilation;
    #pragma omp parallel for
    for (int row = 0; row < g->c * k2; row++) {
        const int ci = row / k2, ky = (row % k2) / g->size, kx = row % g->size;
        const float *plane = im + (long)ci * g->h * g->w;
        float *dst = col + (long)row * spatial;
        for (int oy = 0; oy < g->out_h; oy++) {
            const int iy = oy * g->stride_y - pad + ky * g->dilation;
            float *d = dst + oy * g->out_w;
            if (iy < 0 || iy >= g->h) {
                for (int ox = 0; ox < g->out_w; ox++) d[ox] = 0;
                continue;
            }
            const float *src = plane + (long)iy * g->w;
            const int x0 = kx * g->dilation - pad;
            for (int ox = 0; ox < g->out_w; ox++) {
                const int ix = ox * g->stride_x + x0;
                d[ox] = (ix >= 0 && ix < g->w) ? src[ix] : 0;
            }
        }
    }
}

void dn_col2im_add(const float *col, const dn_conv_geom *g, float *im)
{
    const int k2 = g->size * g->size, spatial = g->out_h * g->out_w;
    const int pad = g->pad * g->dilation;
    /* parallel over input planes: taps of one plane never touch another */
    #pragma omp parallel for
    for (int ci = 0; ci < g->c; ci++) {
        float *plane = im + (long)ci * g->h * g->w;
        for (int t = 0; t < k2; t++) {
            const int ky = t / g->size, kx = t % g->size;
            const float *src = col + ((long)ci * k2 + t) * spatial;
            for (int oy = 0; oy < g->out_h; oy++) {
                const int iy = oy * g->stride_y - pad + ky * g->dilation;
                if (iy < 0 || iy >= g->h) continue;
                for (int ox = 0; ox < g->out_w; ox++) {
                    const int ix = ox * g->stride_x - pad + kx * g->dilation;
                    if (ix >= 0 && ix < g->w) plane[(long)iy * g->w + ix] += src[oy * g->out_w + ox];
                }
            }
        }
    }
}

void dn_sgd(float *w, float *u, size_t n, const dn_update *up, float lr, int decay)
{
    const float d = decay ? up->decay * up->batch : 0.f, step = lr / up->batch;
    #pragma omp parallel for
    for (size_t i = 0; i < n; i++) {
        u[i] -= d * w[i];
        w[i] += step * u[i];
        u[i] *= up->momentum;
    }
}
