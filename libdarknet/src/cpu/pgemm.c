/* GEMM on a left matrix packed once (inference weights): C (m, n) = A (m, k) * B (k, n).

   A is packed in panels of DN_PACK_MR rows (one or two SIMD vectors), each panel
   k-major (dn_packed_at), so the kernel reads it as one contiguous stream and no call
   repacks it (OpenBLAS repacks both operands on every call). B and C are used
   in place, row-major. Each step of the kernel loads the panel's DN_PACK_MR
   weights (output channels) and multiplies them by up to 16 broadcast values of
   one row of B (pixels), so no shape wastes lanes on a partial vector of pixels
   (7x7 maps: 49 pixels); the vectors of accumulated channels are transposed into
   the rows of C in registers.

   Vectors are read and written through the vector type (simd.h): with memcpy the
   x86-64-v3 build's GEMM ran at 15 GFLOPS per core instead of 65-80. */

#include <omp.h>

#include "cpu.h"
#include "simd.h"

/* the kernel's multiply-adds fuse (the package builds with -ffp-contract=off) */
#pragma GCC optimize("fp-contract=fast")

#define PANEL DN_PACK_MR /* rows of A per packed panel */
#if VL == 16
#define PIXELS 16 /* columns per tile: 16 accumulators of 32 vector registers */
#define TILE_ROWS 16
#elif VL == 8
#define PIXELS 6 /* 2 x 6 accumulators, 2 weights and a broadcast: 15 of 16 vector registers */
#define TILE_ROWS 8
#else
#define PIXELS 6
#define TILE_ROWS 8
#endif
/* The widths of the tiles after a panel's whole ones (constants, so the accumulators stay in
   registers). With 32 vector registers a tile takes on up to 3 columns left after it rather than
   leave them a narrow tile of their own: 7x7 maps (49 = 16 + 16 + 17 pixels) ran 6% faster
   (harness, one core, 512 -> 1024 3x3). */
#if VL == 16
#define MERGED 3
#define TILE_WIDTHS(X) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(17) X(18) X(19)
#else
#define MERGED 0 /* 15 of 16 registers taken */
#define TILE_WIDTHS(X) X(1) X(2) X(4)
#endif
#define HALVES (PANEL / VL)                    /* vectors per panel row of k: 1 or 2 */
#define SHORT_K 64                             /* products shorter than this take tile_rows */
#define PREFETCH (4096 / (PANEL * sizeof(float))) /* k steps ahead that tile() prefetches its weights */

size_t dn_pack_size(int m, int k) { return (size_t)dn_pack_rows(m) * k; }

/* Cache blocking: B is taken in blocks of at most B_BLOCK floats, a slice of k
   (at most K_SLICE) by a run of columns, and every panel passes over a block while it is
   in L2; a panel's slice of A (PANEL x K_SLICE) and a tile's of B stay in L1 meanwhile.
   Without it each panel streamed the whole of B from L3 (13x13 and 52x52 maps ran at half
   the speed of the in-cache shapes, and a second thread added almost nothing). */
#define K_SLICE 256
#define B_BLOCK (64 * 1024)

/* C rows [0, rows) x columns [0, cols) of one panel, stored or (add) added to C; cols is a
   constant where inlined, so the accumulators stay in registers. Each step multiplies the
   panel's HALVES vectors of weights by cols broadcast values of row q of B. Each VL
   accumulators (pixels) of a vector of rows are transposed into VL rows of C, the rest of the
   columns stored one by one.
   `ahead` (or NULL): the slice of A the thread takes next, prefetched step by step (on 8x8 to
   32x32 maps, where a panel's weights serve a few tiles, its first tile waited on memory; 5-15%
   of those layers). */
static inline __attribute__((always_inline)) void tile(int cols, int k, const float *ap, const float *b, int ldb,
                                                       float *c, int ldc, int rows, int add, const float *ahead)
{
    vf acc[HALVES][PIXELS + MERGED];
    for (int h = 0; h < HALVES; h++)
        for (int j = 0; j < cols; j++) acc[h][j] = (vf){0};
    for (int q = 0; q < k; q++) {
        vf a[HALVES];
        for (int h = 0; h < HALVES; h++) a[h] = *(const vf *)(ap + (size_t)q * PANEL + h * VL);
        __builtin_prefetch(ap + (q + PREFETCH) * PANEL); /* a panel's first tile streams it from memory */
        if (ahead) __builtin_prefetch(ahead + (size_t)q * PANEL); /* the next panel's, meanwhile */
        const float *bq = b + (size_t)q * ldb;
        for (int j = 0; j < cols; j++)
            for (int h = 0; h < HALVES; h++) acc[h][j] += a[h] * bq[j];
    }
    const int whole = cols / VL * VL;
    for (int h = 0; h < HALVES && h * VL < rows; h++) {
        const int r0 = h * VL, hr = rows - r0 < VL ? rows - r0 : VL;
        for (int j0 = 0; j0 < whole; j0 += VL) {
            dn_transpose(acc[h] + j0);
            for (int i = 0; i < hr; i++) {
                vf *ci = (vf *)(c + (size_t)(r0 + i) * ldc + j0);
                if (add) *ci += acc[h][j0 + i];
                else *ci = acc[h][j0 + i];
            }
        }
        for (int i = 0; i < hr; i++)
            for (int j = whole; j < cols; j++) {
                float *ci = c + (size_t)(r0 + i) * ldc + j;
                *ci = add ? *ci + acc[h][j][i] : acc[h][j][i];
            }
    }
}

/* C rows [r0, r0 + TILE_ROWS) (those under rows) x VL columns of one panel, the pixels in
   the vector: rows of C stored as they are, for short products where the transpose of
   tile() would cost more than the multiply-adds (never sliced: k < SHORT_K <= K_SLICE). */
static inline __attribute__((always_inline)) void tile_rows(int k, const float *ap, int r0, const float *b, int ldb,
                                                            float *c, int ldc, int rows)
{
    vf acc[TILE_ROWS];
    for (int i = 0; i < TILE_ROWS; i++) acc[i] = (vf){0};
    for (int q = 0; q < k; q++) {
        const vf bq = *(const vf *)(b + (size_t)q * ldb);
        const float *aq = ap + (size_t)q * PANEL + r0;
        for (int i = 0; i < TILE_ROWS; i++) acc[i] += aq[i] * bq;
    }
    for (int i = 0; i < TILE_ROWS && r0 + i < rows; i++) *(vf *)(c + (size_t)(r0 + i) * ldc) = acc[i];
}

/* Columns of the next tile where the panel's last w columns are left (after its whole tiles):
   the widest tile width (PIXELS, 8, 4, 2, 1) within w, or all w where at most MERGED more. */
static inline int tile_width(int w)
{
    int t = PIXELS;
    while (t > w) t = t == PIXELS && PIXELS > 8 ? 8 : t == PIXELS ? 4 : t / 2;
    return w - t <= MERGED ? w : t;
}

/* Columns [n0, n1) of one panel's rows over k steps of A and B: whole tiles, then the rest in
   narrower ones; the first prefetches `ahead`. */
static inline __attribute__((always_inline)) void panel(int n0, int n1, int k, const float *ap, const float *b,
                                                        int ldb, float *c, int ldc, int rows, int add,
                                                        const float *ahead)
{
    int j = n0;
    if (k < SHORT_K)
        for (; j + VL <= n1; j += VL)
            for (int r0 = 0; r0 < rows; r0 += TILE_ROWS) tile_rows(k, ap, r0, b + j, ldb, c + j, ldc, rows);
    const int rest = (n1 - j) % PIXELS, merged = rest && rest <= MERGED && n1 - j > PIXELS;
    for (const int whole = n1 - rest - (merged ? PIXELS : 0); j < whole; j += PIXELS)
        tile(PIXELS, k, ap, b + j, ldb, c + j, ldc, rows, add, j == n0 ? ahead : NULL);
    while (j < n1) {
        const int w = tile_width(n1 - j);
        switch (w) {
#define TILE(cols)                                                                \
    case cols:                                                                    \
        tile(cols, k, ap, b + j, ldb, c + j, ldc, rows, add, j == n0 ? ahead : NULL); \
        break;
            TILE_WIDTHS(TILE)
#undef TILE
        }
        j += w;
    }
}

/* The blocking of one product: k in equal slices of at most K_SLICE, columns in runs of
   whole tiles whose slice of B fits B_BLOCK. */
typedef struct {
    int m, n, k, panels, slice, cols;
    const float *ap, *b;
    float *c;
    int ldb, ldc;
} product;

static product blocking(int m, int n, int k, const float *ap, const float *b, int ldb, float *c, int ldc)
{
    const int slices = (k + K_SLICE - 1) / K_SLICE, slice = (k + slices - 1) / slices;
    int cols = B_BLOCK / slice / PIXELS * PIXELS;
    if (cols < PIXELS) cols = PIXELS;
    return (product){m, n, k, dn_pack_rows(m) / PANEL, slice, cols, ap, b, c, ldb, ldc};
}

/* The steps of the k slice from q0 (slices of `slice` steps), panel p's slice of A from q0, and
   the same slice of the next panel (NULL after the last). */
static int slice_steps(int k, int slice, int q0) { return k - q0 < slice ? k - q0 : slice; }
static const float *a_slice(const product *g, int p, int q0)
{
    return g->ap + (size_t)p * PANEL * g->k + (size_t)q0 * PANEL;
}
static const float *next_a_slice(const product *g, int p, int q0)
{
    return p + 1 < g->panels ? a_slice(g, p + 1, q0) : NULL;
}

/* Panel p of the product over columns [n0, n1) and k slice [q0, q0 + slice). */
static void panel_slice(const product *g, int p, int n0, int n1, int q0)
{
    panel(n0, n1, slice_steps(g->k, g->slice, q0), a_slice(g, p, q0), g->b + (size_t)q0 * g->ldb, g->ldb,
          g->c + (size_t)p * PANEL * g->ldc, g->ldc, dn_panel_rows(g->m, p), q0 > 0, next_a_slice(g, p, q0));
}

/* Columns [n0, n1) of every panel, in the calling thread. */
static void columns(const product *g, int n0, int n1)
{
    for (int j0 = n0; j0 < n1; j0 += g->cols) {
        const int j1 = j0 + g->cols < n1 ? j0 + g->cols : n1;
        for (int q0 = 0; q0 < g->k; q0 += g->slice)
            for (int p = 0; p < g->panels; p++) panel_slice(g, p, j0, j1, q0);
    }
}

void dn_pgemm_serial(int m, int n, int k, const float *ap, const float *b, int ldb, float *c, int ldc)
{
    const product g = blocking(m, n, k, ap, b, ldb, c, ldc);
    columns(&g, 0, n);
}

/* Work items of one block of columns: panels times column chunks, enough for every thread. */
static int column_chunks(int panels, int n, int threads)
{
    int chunks = 1;
    while (panels * chunks < 4 * threads && n / (2 * chunks) >= 2 * PIXELS) chunks *= 2;
    return chunks;
}

/* Columns per chunk of n split into `chunks`: whole tiles. */
static int chunk_width(int n, int chunks) { return ((n + chunks - 1) / chunks + PIXELS - 1) / PIXELS * PIXELS; }

/* Threads take whole blocks of columns where there are enough of them; otherwise they
   share each block's panels (and chunks of its columns), slice after slice: the static
   schedule gives a thread the same items in every slice, so no slice waits for another. */
void dn_pgemm(int m, int n, int k, const float *ap, const float *b, int ldb, float *c, int ldc)
{
    const int threads = dn_cpu_threads();
    const product g = blocking(m, n, k, ap, b, ldb, c, ldc);
    const int blocks = (n + g.cols - 1) / g.cols;
    if (threads == 1) {
        columns(&g, 0, n);
        return;
    }
    if (blocks >= 2 * threads) {
        #pragma omp parallel for schedule(dynamic) num_threads(threads)
        for (int i = 0; i < blocks; i++) columns(&g, i * g.cols, (i + 1) * g.cols < n ? (i + 1) * g.cols : n);
        return;
    }
    #pragma omp parallel num_threads(threads)
    for (int j0 = 0; j0 < n; j0 += g.cols) {
        const int j1 = j0 + g.cols < n ? j0 + g.cols : n, chunks = column_chunks(g.panels, j1 - j0, threads);
        const int width = chunk_width(j1 - j0, chunks);
        for (int q0 = 0; q0 < k; q0 += g.slice) {
            #pragma omp for collapse(2) schedule(static) nowait
            for (int p = 0; p < g.panels; p++)
                for (int ch = 0; ch < chunks; ch++) {
                    const int n0 = j0 + ch * width, n1 = n0 + width < j1 ? n0 + width : j1;
                    if (n0 < n1) panel_slice(&g, p, n0, n1, q0);
                }
        }
    }
}

void dn_pgemm_batch(int count, int m, int n, int k, const float *ap, size_t stride_a, const float *b,
                    size_t stride_b, int ldb, float *c, size_t stride_c, int ldc)
{
    const int threads = dn_cpu_threads();
    #pragma omp parallel for schedule(dynamic) num_threads(threads)
    for (int i = 0; i < count; i++) dn_pgemm_serial(m, n, k, ap + i * stride_a, b + i * stride_b, ldb, c + i * stride_c, ldc);
}

/* Steps of k per slice of dn_pgemm_planes: equal slices whose count packed planes fit PLANES_A. */
#define PLANES_A (64 * 1024) /* floats of one thread's packed slices (L2) */
static int planes_slice(int count, int k)
{
    int most = PLANES_A / (count * PANEL);
    if (most > K_SLICE) most = K_SLICE;
    const int slices = (k + most - 1) / most;
    return (k + slices - 1) / slices;
}

/* Floats between the packed planes of one slice: a cache line (16 floats) more than the slice, so
   that planes a power of two of KiB apart do not put the pack's stores to all of them in one L1 set. */
static size_t plane_floats(int steps) { return (size_t)PANEL * steps + 16; }

size_t dn_pgemm_planes_scratch(int count, int k) { return (size_t)count * plane_floats(planes_slice(count, k)); }

/* Each work item (a panel and a chunk of columns) packs its panel's slice of all count A's, then
   multiplies it with every B while it is in L2: the A's are never stored whole, and each B is
   read once per panel (from L3: the callers' B's are a few MiB). */
void dn_pgemm_planes(int count, int m, int n, int k, dn_pack_slice pack, const void *ctx, const float *b,
                     size_t stride_b, int ldb, float *c, size_t stride_c, int ldc, float *scratch, size_t scratch_n)
{
    const int slice = planes_slice(count, k), panels = dn_pack_rows(m) / PANEL;
    const size_t each = dn_pgemm_planes_scratch(count, k);
    int threads = dn_cpu_threads();
    if ((size_t)threads * each > scratch_n) threads = (int)(scratch_n / each);
    const int chunks = column_chunks(panels, n, threads);
    const int width = chunk_width(n, chunks);
    #pragma omp parallel for collapse(2) schedule(dynamic) num_threads(threads)
    for (int p = 0; p < panels; p++)
        for (int ch = 0; ch < chunks; ch++) {
            const int n0 = ch * width, n1 = n0 + width < n ? n0 + width : n;
            float *ap = scratch + each * omp_get_thread_num();
            for (int q0 = 0; n0 < n1 && q0 < k; q0 += slice) {
                const int steps = slice_steps(k, slice, q0);
                pack(ctx, p, q0, steps, ap, plane_floats(steps));
                for (int e = 0; e < count; e++)
                    panel(n0, n1, steps, ap + e * plane_floats(steps), b + e * stride_b + (size_t)q0 * ldb, ldb,
                          c + e * stride_c + (size_t)p * PANEL * ldc, ldc, dn_panel_rows(m, p), q0 > 0, NULL);
            }
        }
}
