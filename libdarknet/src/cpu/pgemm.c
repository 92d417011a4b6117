/* GEMM on a left matrix packed once (inference weights): C (m, n) = A (m, k) * B (k, n).

   A is packed in panels of DN_PACK_MR rows (one SIMD vector), each panel k-major
   (dn_packed_at), so the kernel reads it as one contiguous stream and no call
   repacks it (OpenBLAS repacks both operands on every call). B and C are used
   in place, row-major. Each step of the kernel loads a vector of DN_PACK_MR
   weights (output channels) and multiplies it by up to 16 broadcast values of
   one row of B (pixels), so no shape wastes lanes on a partial vector of pixels
   (7x7 maps: 49 pixels); the vectors of accumulated channels are transposed into
   the rows of C through a small buffer. */
#include <string.h>

#include "cpu.h"

/* the kernel's multiply-adds fuse (the package builds with -ffp-contract=off) */
#pragma GCC optimize("fp-contract=fast")

#define VL DN_PACK_MR
#define SHORT_K 64                         /* products shorter than this take tile_rows */
#define PREFETCH (4096 / (VL * sizeof(float))) /* k steps ahead that tile() prefetches its weights */
#ifdef __AVX512F__
#define PIXELS 16 /* accumulators per tile: 32 vector registers */
#else
#define PIXELS 12 /* 16 vector registers */
#endif

typedef float vf __attribute__((vector_size(VL * sizeof(float)), aligned(sizeof(float))));

size_t dn_pack_size(int m, int k) { return (size_t)(m + VL - 1) / VL * VL * k; }

/* C rows [0, rows) x columns [0, cols) of one panel; cols <= PIXELS is a constant
   where inlined, so the accumulators stay in registers. */
static inline __attribute__((always_inline)) void tile(int cols, int k, const float *ap, const float *b, int ldb,
                                                       float *c, int ldc, int rows)
{
    vf acc[PIXELS];
    for (int j = 0; j < cols; j++) acc[j] = (vf){0};
    for (int q = 0; q < k; q++) {
        vf a;
        memcpy(&a, ap + (size_t)q * VL, sizeof a);
        __builtin_prefetch(ap + (q + PREFETCH) * VL); /* a panel's first tile streams it from memory */
        const float *bq = b + (size_t)q * ldb;
        for (int j = 0; j < cols; j++) acc[j] += a * bq[j];
    }
    float t[PIXELS][VL];
    for (int j = 0; j < cols; j++) memcpy(t[j], &acc[j], sizeof acc[j]);
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) c[(size_t)i * ldc + j] = t[j][i];
}

/* C rows [0, rows) x VL columns of one panel, the pixels in the vector: rows of C
   stored as they are, for short products where the transpose of tile() would cost
   more than the multiply-adds. */
static inline __attribute__((always_inline)) void tile_rows(int k, const float *ap, const float *b, int ldb,
                                                            float *c, int ldc, int rows)
{
    vf acc[VL];
    for (int i = 0; i < VL; i++) acc[i] = (vf){0};
    for (int q = 0; q < k; q++) {
        vf bq;
        memcpy(&bq, b + (size_t)q * ldb, sizeof bq);
        const float *aq = ap + (size_t)q * VL;
        for (int i = 0; i < VL; i++) acc[i] += aq[i] * bq;
    }
    for (int i = 0; i < rows; i++) memcpy(c + (size_t)i * ldc, &acc[i], sizeof acc[i]);
}

/* Columns [n0, n1) of one panel's rows: whole tiles, then the rest in halving tiles. */
static void panel(int n0, int n1, int k, const float *ap, const float *b, int ldb, float *c, int ldc, int rows)
{
    int j = n0;
    if (k < SHORT_K)
        for (; j + VL <= n1; j += VL) tile_rows(k, ap, b + j, ldb, c + j, ldc, rows);
    for (; j + PIXELS <= n1; j += PIXELS) tile(PIXELS, k, ap, b + j, ldb, c + j, ldc, rows);
    if (n1 - j >= 8) tile(8, k, ap, b + j, ldb, c + j, ldc, rows), j += 8;
    if (n1 - j >= 4) tile(4, k, ap, b + j, ldb, c + j, ldc, rows), j += 4;
    if (n1 - j >= 2) tile(2, k, ap, b + j, ldb, c + j, ldc, rows), j += 2;
    if (n1 - j >= 1) tile(1, k, ap, b + j, ldb, c + j, ldc, rows);
}

void dn_pgemm_serial(int m, int n, int k, const float *ap, const float *b, int ldb, float *c, int ldc)
{
    for (int r = 0; r < m; r += VL)
        panel(0, n, k, ap + (size_t)r * k, b, ldb, c + (size_t)r * ldc, ldc, m - r < VL ? m - r : VL);
}

/* Work items: panels of rows times column chunks, enough for every thread. */
static int column_chunks(int panels, int n, int threads)
{
    int chunks = 1;
    while (panels * chunks < 4 * threads && n / (2 * chunks) >= 2 * PIXELS) chunks *= 2;
    return chunks;
}

void dn_pgemm(int m, int n, int k, const float *ap, const float *b, int ldb, float *c, int ldc)
{
    const int threads = dn_cpu_threads(), panels = (m + VL - 1) / VL;
    const int chunks = threads == 1 ? 1 : column_chunks(panels, n, threads);
    /* chunk edges on whole tiles */
    const int width = ((n + chunks - 1) / chunks + PIXELS - 1) / PIXELS * PIXELS;
    #pragma omp parallel for collapse(2) schedule(static) num_threads(threads)
    for (int p = 0; p < panels; p++)
        for (int ch = 0; ch < chunks; ch++) {
            const int n0 = ch * width, n1 = n0 + width < n ? n0 + width : n, r = p * VL;
            if (n0 < n1) panel(n0, n1, k, ap + (size_t)r * k, b, ldb, c + (size_t)r * ldc, ldc, m - r < VL ? m - r : VL);
        }
}

void dn_pgemm_batch(int count, int m, int n, int k, const float *ap, size_t stride_a, const float *b,
                    size_t stride_b, int ldb, float *c, size_t stride_c, int ldc)
{
    const int threads = dn_cpu_threads(), panels = (m + VL - 1) / VL;
    #pragma omp parallel for collapse(2) schedule(static) num_threads(threads)
    for (int i = 0; i < count; i++)
        for (int p = 0; p < panels; p++) {
            const int r = p * VL;
            panel(0, n, k, ap + i * stride_a + (size_t)r * k, b + i * stride_b, ldb, c + i * stride_c + (size_t)r * ldc,
                  ldc, m - r < VL ? m - r : VL);
        }
}
