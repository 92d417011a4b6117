/* Winograd F(4x4, 3x3) and F(2x2, 3x3) for 3x3, stride-1, pad-1 convolutions
   at inference (Lavin & Gray, "Fast Algorithms for Convolutional Neural
   Networks", 2015; the B, G, A matrices are theirs).

   m x m output tiles read a x a input tiles, a = m + 2. Per strip of tile rows:
     V[a*a][C][T] = B^T d B   for every tile t and input channel
     M[a*a][K][T] = U[a*a][K][C] x V[a*a][C][T]   (a*a GEMMs, U packed: pgemm.c)
     out          = A^T m A   scattered back into the output planes
   U = G g G^T is 16/9 or 4 times the weights, so inference keeps only the packed weights
   and transforms U at every forward: whole, into the workspace, where it is small, else
   each panel of filters' slice of it as the GEMMs take it (dn_pgemm_planes). Training
   transforms the whole of U once per batch.
   The transforms run over up to STRIP tiles of one tile row at a time (the
   same tile row of several images side by side when the map is narrow), laid
   out tile-innermost so every arithmetic loop is a contiguous SIMD loop; the
   stride-4 gather of input rows and scatter of output rows use AVX2
   transposes where available, scalar copies elsewhere. Strips of tile rows
   bound V and M to a few MiB. */
#include <omp.h>
#include <string.h>
#ifdef __AVX2__
#include <immintrin.h>
#endif

#include "cpu.h"
#include "simd.h"

#define STRIP 64                      /* tiles per transform run */
#define WS_LIMIT ((size_t)1 << 20)    /* floats of V + M per strip of tile rows: 3 << 20 was no faster */
#define MIN_TILES 64                  /* tiles per strip below which the products slow down */
/* floats between the (m+2)^2 planes of V and of M: plane strides that are
   multiples of 4 KiB put the transforms' dozens of streams in the same cache
   sets (up to 2x slower on some map sizes) */
#define PLANE_PAD 16

static int tiles(int n, int m) { return (n + m - 1) / m; }

/* Floats of V and M for nt tiles. */
static size_t tiles_floats(int c, int k, int m, size_t nt)
{
    return (size_t)(m + 2) * (m + 2) * ((size_t)(c + k) * nt + 2 * PLANE_PAD);
}

/* The most tiles whose V and M fit in `room` floats. */
static size_t tiles_in(int c, int k, int m, size_t room)
{
    const size_t a = (size_t)(m + 2) * (m + 2), pad = a * 2 * PLANE_PAD;
    return room > pad ? (room - pad) / (a * (c + k)) : 0;
}

/* Tile rows per strip: V and M of a strip within WS_LIMIT, but at least
   enough tiles for an efficient GEMM; and within `room` floats (a workspace
   planned smaller), down to one tile row; the strips of a map all alike. */
static int strip_rows(int c, int k, int h, int w, int m, size_t room)
{
    const int tx = tiles(w, m), ty = tiles(h, m), a = (m + 2) * (m + 2);
    const size_t per_row = (size_t)a * (c + k) * tx, fit = tiles_in(c, k, m, room) / tx;
    int rows = (int)(WS_LIMIT / per_row);
    const int efficient = (256 + tx - 1) / tx;
    if (rows < efficient) rows = efficient;
    if (rows > ty) rows = ty;
    if ((size_t)rows > fit) rows = (int)fit;
    if (rows < 1) rows = 1;
    const int strips = (ty + rows - 1) / rows;
    return (ty + strips - 1) / strips; /* as many strips, of even size */
}

/* The output tile size, 4 for F(4x4, 3x3) or 2 for F(2x2, 3x3), that beats
   im2col + GEMM here, else 0. Cost per (filter, channel) pair in
   multiply-adds: (m+2)^2 per tile against 9 per pixel, plus transforming the
   weights at each forward (about two per transformed tap), plus reading the 9
   raw weights, the same for all three: when they do not fit in cache (measured
   on AVX2) one streamed weight costs about as much as 27 multiply-adds, so
   small maps need a larger gain. 512 -> 1024 on 8x8 ran 15-25% faster on
   Winograd than on im2col, 13x13 512 -> 512 35%. */
int dn_wino_tile(int c, int k, int h, int w)
{
    /* few input channels (a first layer): the transforms' traffic outweighs the GEMMs */
    if (c < 16) return 0;
    const long stream = 9L * k * c > (1L << 18) ? 9 * 27 : 0;
    const long im2col = 9L * h * w + stream;
    const long f2 = 16L * (tiles(h, 2) * tiles(w, 2) + 2) + stream;
    const long f4 = 36L * (tiles(h, 4) * tiles(w, 4) + 2) + stream;
    const int four = f4 <= f2;
    return 10 * (four ? f4 : f2) < 9 * im2col ? (four ? 4 : 2) : 0;
}

/* Training's tile size: as dn_wino_tile without the weights' streaming and transform costs (the
   GEMMs of many images share each pass over the weights), F(2x2, 3x3) on ties (fewer rounding steps), and
   im2col where c or k is small (narrow GEMMs, transforms not amortised). */
int dn_wino_train_tile(int c, int k, int h, int w)
{
    if (c < 16 || k < 16) return 0;
    const long im2col = 9L * h * w, f2 = 16L * tiles(h, 2) * tiles(w, 2), f4 = 36L * tiles(h, 4) * tiles(w, 4);
    const long best = f4 < f2 ? f4 : f2;
    if (10 * best >= 9 * im2col) return 0;
    return f4 < f2 ? 4 : 2;
}

/* Floats of V and M of one strip. */
static size_t strip_floats(int c, int k, int h, int w, int m)
{
    return tiles_floats(c, k, m, (size_t)strip_rows(c, k, h, w, m, SIZE_MAX) * tiles(w, m));
}

/* The a rows of G x (x0, x1, x2) (a = m + 2): one column of 3 taps transformed. For training,
   each row a sum of products (the rounding its tolerances were set on). Inference transforms the
   weights at every forward: there (shared) rows 1 and 2, and 3 and 4, share their even taps' part
   and differ in the sign of x1's, half the arithmetic. */
static inline __attribute__((always_inline)) void g_rows(int m, int shared, vf x0, vf x1, vf x2, vf *out)
{
    out[0] = x0 * (m == 2 ? 1.f : 1 / 4.f);
    out[m + 1] = x2;
    if (m == 2 && shared) {
        const vf even = x0 + x2;
        out[1] = .5f * (even + x1);
        out[2] = .5f * (even - x1);
    } else if (m == 2) {
        out[1] = .5f * (x0 + x1 + x2);
        out[2] = .5f * (x0 - x1 + x2);
    } else if (shared) {
        const vf even6 = (x0 + x2) * (-1 / 6.f), odd6 = x1 * (1 / 6.f);
        const vf even24 = x0 * (1 / 24.f) + x2 * (1 / 6.f), odd12 = x1 * (1 / 12.f);
        out[1] = even6 - odd6;
        out[2] = even6 + odd6;
        out[3] = even24 + odd12;
        out[4] = even24 - odd12;
    } else {
        out[1] = x0 * (-1 / 6.f) + x1 * (-1 / 6.f) + x2 * (-1 / 6.f);
        out[2] = x0 * (-1 / 6.f) + x1 * (1 / 6.f) + x2 * (-1 / 6.f);
        out[3] = x0 * (1 / 24.f) + x1 * (1 / 12.f) + x2 * (1 / 6.f);
        out[4] = x0 * (1 / 24.f) - x1 * (1 / 12.f) + x2 * (1 / 6.f);
    }
}

/* G g G^T of VL filters at once (a lane each): g their nine taps (row-major 3x3) times scale,
   transformed tap e (< a*a) stored at u + e * stride; shared: as g_rows. */
static inline __attribute__((always_inline)) void filter_transform(const vf *g, int m, int shared, vf scale,
                                                                   float *u, size_t stride)
{
    const int a = m + 2;
    vf t[3][6]; /* t[j] = G x column j of g */
    for (int j = 0; j < 3; j++) g_rows(m, shared, g[j] * scale, g[3 + j] * scale, g[6 + j] * scale, t[j]);
    for (int i = 0; i < a; i++) {
        vf r[6];
        g_rows(m, shared, t[0][i], t[1][i], t[2][i], r);
        for (int e = 0; e < a; e++) *(vf *)(u + (size_t)(i * a + e) * stride) = r[e];
    }
}

/* Floats between the (m+2)^2 planes of u: a packed matrix and PLANE_PAD, as the transform
   stores to every plane at once. */
static size_t wino_plane(int k, int c) { return dn_pack_size(k, c) + PLANE_PAD; }

size_t dn_wino_weights_size(int k, int c, int m) { return (size_t)(m + 2) * (m + 2) * wino_plane(k, c); }

/* Filters r .. r + VL (those under k; a lane each), channels q0 .. q0 + VL (those under c)
   transformed: channel q0 + i's taps at u + i * DN_PACK_MR + e * stride. In raw weights
   (k, c, 3, 3) each filter's taps of VL channels are 9 vectors in a row, so 9 register
   transposes give the nine taps of each channel across the filters; short blocks (the last
   filters or channels) are gathered one by one. */
static void filter_block(const float *w, const float *scale, int k, int c, int m, int r, int q0, float *u,
                         size_t stride)
{
    const int nq = c - q0 < VL ? c - q0 : VL, nr = k - r < 0 ? 0 : k - r < VL ? k - r : VL;
    vf s, g[9 * VL]; /* g[9 * i + e]: tap e of channel q0 + i */
    for (int j = 0; j < VL; j++) s[j] = j < nr && scale ? scale[r + j] : 1.f;
    if (nq == VL && nr == VL)
        for (int b = 0; b < 9; b++) {
            vf v[VL];
            for (int j = 0; j < VL; j++) v[j] = *(const vf *)(w + ((size_t)(r + j) * c + q0) * 9 + b * VL);
            dn_transpose(v);
            for (int i = 0; i < VL; i++) g[b * VL + i] = v[i];
        }
    else
        for (int i = 0; i < 9 * nq; i++)
            for (int j = 0; j < VL; j++) g[i][j] = j < nr ? w[((size_t)(r + j) * c + q0) * 9 + i] : 0.f;
    for (int i = 0; i < nq; i++) filter_transform(g + 9 * i, m, 0, s, u + i * DN_PACK_MR, stride);
}

void dn_wino_weights(const float *w, const float *scale, int k, int c, int m, float *u)
{
    const int blocks = (c + VL - 1) / VL;
    #pragma omp parallel for collapse(2) schedule(static) num_threads(dn_cpu_threads())
    for (int r = 0; r < dn_pack_rows(k); r += VL)
        for (int qb = 0; qb < blocks; qb++)
            filter_block(w, scale, k, c, m, r, qb * VL, u + dn_packed_at(c, r, qb * VL), wino_plane(k, c));
}

/* Where inference's U comes from: packed weights (dn_packed_at of (k, 9c)), each filter scaled. */
typedef struct {
    const float *packed, *scale;
    int k, c, m;
} packed_filters;

#define PREFETCH_CHANNELS 48 /* channels ahead that transform_panel prefetches its weights (into L2) */

/* The scales of filters r .. r + VL, 1 past the last filter or without scales. */
static inline vf filter_scales(const packed_filters *f, int r)
{
    vf s;
    for (int j = 0; j < VL; j++) s[j] = r + j < f->k && f->scale ? f->scale[r + j] : 1.f;
    return s;
}

/* Fetch the nine packed tap vectors of one channel (from taps on) into L2. */
static inline void fetch_channel(const float *taps)
{
    for (int e = 0; e < 9; e++) __builtin_prefetch(taps + e * DN_PACK_MR, 0, 2);
}

/* Panel p's channels q0 .. q0 + steps of every plane of U, for a constant m (the transform
   unrolled: with m a variable it took a quarter of the Winograd GEMMs' time). Packed weights
   hold each tap as a vector across a panel's filters. */
static inline __attribute__((always_inline)) void transform_panel(const packed_filters *f, int m, int p, int q0,
                                                                  int steps, float *dst, size_t plane)
{
    for (int r = p * DN_PACK_MR; r < (p + 1) * DN_PACK_MR; r += VL) {
        const vf s = filter_scales(f, r);
        for (int i = 0; i < steps; i++) {
            vf g[9];
            const float *taps = f->packed + dn_packed_at(9 * f->c, r, 9 * (q0 + i));
            for (int e = 0; e < 9; e++) g[e] = *(const vf *)(taps + e * DN_PACK_MR);
            fetch_channel(taps + 9 * PREFETCH_CHANNELS * DN_PACK_MR);
            filter_transform(g, m, 1, s, dst + (size_t)i * DN_PACK_MR + r % DN_PACK_MR, plane);
        }
    }
}

/* dn_pack_slice of U (dn_pgemm_planes). */
static void transform_slice(const void *ctx, int p, int q0, int steps, float *dst, size_t plane)
{
    const packed_filters *f = ctx;
    if (f->m == 2) transform_panel(f, 2, p, q0, steps, dst, plane);
    else transform_panel(f, 4, p, q0, steps, dst, plane);
}

/* The filters of the input delta's convolution: row ci of u is channel ci of every filter,
   rotated by 180 degrees (training, once per batch: gathered one by one). */
void dn_wino_weights_backward(const float *w, int k, int c, int m, float *u)
{
    const size_t kc = wino_plane(c, k);
    #pragma omp parallel for collapse(2) schedule(static) num_threads(dn_cpu_threads())
    for (int r0 = 0; r0 < dn_pack_rows(c); r0 += VL)
        for (int q = 0; q < k; q++) {
            vf g[9];
            for (int e = 0; e < 9; e++)
                for (int j = 0; j < VL; j++) g[e][j] = r0 + j < c ? w[((size_t)q * c + r0 + j) * 9 + 8 - e] : 0.f;
            filter_transform(g, m, 0, (vf){0} + 1.f, u + dn_packed_at(k, r0, q), kc);
        }
}

/* The tiles one transform run takes: tile columns x0 .. x0 + nx of images b0 .. b0 + nb, image
   after image (nb > 1 only when nx is the whole tile row). */
typedef struct {
    int b0, nb, x0, nx;
} run;

/* Runs per tile row: up to STRIP tiles of one image's row where the map is that wide, else whole
   rows of as many images as fit side by side, so the transforms' SIMD loops run across images on
   small maps. */
static int run_count(int images, int tx)
{
    const int xs = tx < STRIP ? tx : STRIP, per = STRIP / xs;
    return (images + per - 1) / per * ((tx + xs - 1) / xs);
}

static run run_at(int images, int tx, int i)
{
    const int xs = tx < STRIP ? tx : STRIP, per = STRIP / xs, nxr = (tx + xs - 1) / xs;
    run r = {i / nxr * per, 0, i % nxr * xs, 0};
    r.nb = images - r.b0 < per ? images - r.b0 : per;
    r.nx = tx - r.x0 < xs ? tx - r.x0 : xs;
    return r;
}

/* d[j][t] = column m * x + j - 1 of one input row, j < m + 2, for the run's tiles t (image
   b0 + t / nx, tile column x0 + t % nx); row: that row of image b0, images im_stride apart;
   zero outside the w columns. */
static void gather_row(const float *row, size_t im_stride, int w, const run *r, int m, float (*d)[STRIP], int at)
{
    float cat[4 * STRIP + 4]; /* each image's columns c0 .. c0 + span side by side */
    const int span = m * r->nx, c0 = m * r->x0 - 1, n = r->nb * r->nx;
    const int lo = c0 < 0 ? -c0 : 0, hi = c0 + span > w ? w - c0 : span;
    for (int b = 0; b < r->nb; b++) {
        float *dst = cat + b * span;
        const float *src = row + b * im_stride + c0;
        for (int q = 0; q < lo; q++) dst[q] = 0.f;
        memcpy(dst + lo, src + lo, sizeof(float) * (hi - lo));
        for (int q = hi; q < span; q++) dst[q] = 0.f;
    }
    for (int q = 0; q < 4; q++) cat[n * m + q] = 0.f;
    int t = 0;
#ifdef __AVX2__
    /* 8 tiles of 4 columns: four 4-float groups per load pair, transposed to d[j][t..t+8] */
    for (; m == 4 && t + 8 <= n; t += 8)
        for (int half = 0; half < 2; half++) {
            const float *p = cat + 4 * t + 4 * half;
            const __m256 a0 = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(p)), _mm_loadu_ps(p + 16), 1);
            const __m256 a1 = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(p + 4)), _mm_loadu_ps(p + 20), 1);
            const __m256 a2 = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(p + 8)), _mm_loadu_ps(p + 24), 1);
            const __m256 a3 = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(p + 12)), _mm_loadu_ps(p + 28), 1);
            const __m256 l01 = _mm256_unpacklo_ps(a0, a1), l23 = _mm256_unpacklo_ps(a2, a3);
            _mm256_storeu_ps(&d[4 * half][at + t], _mm256_shuffle_ps(l01, l23, 0x44));
            _mm256_storeu_ps(&d[4 * half + 1][at + t], _mm256_shuffle_ps(l01, l23, 0xEE));
            if (half) break; /* columns 4 and 5 are the next tile's 0 and 1 */
            const __m256 h01 = _mm256_unpackhi_ps(a0, a1), h23 = _mm256_unpackhi_ps(a2, a3);
            _mm256_storeu_ps(&d[2][at + t], _mm256_shuffle_ps(h01, h23, 0x44));
            _mm256_storeu_ps(&d[3][at + t], _mm256_shuffle_ps(h01, h23, 0xEE));
        }
#endif
    for (; t < n; t++)
        for (int j = 0; j < m + 2; j++) d[j][at + t] = cat[m * t + j];
    /* a tile's last two columns are the next tile's first two, except in each image's last tile */
    for (int b = 0; b < r->nb; b++)
        for (int j = 0; j < 2; j++) {
            const int col = c0 + span + j;
            d[m + j][at + (b + 1) * r->nx - 1] = col < w ? row[b * im_stride + col] : 0.f;
        }
}

/* One output row of the run's tiles from o[j][t] (column m * x + j, j < m): row of image b0,
   images out_stride apart, written (added to when acc), then bias and act applied. */
static void scatter_row(const float (*o)[STRIP], int at, const run *r, int m, float *row, size_t out_stride, int ow,
                        float bias, dn_act act, int acc)
{
    float cat[4 * STRIP];
    const int n = r->nb * r->nx, span = m * r->nx, c0 = m * r->x0, cols = ow - c0 < span ? ow - c0 : span;
    int t = 0;
#ifdef __AVX2__
    /* 8 tiles of 4 columns: o[j][t..t+8] transposed into 32 consecutive columns */
    for (; m == 4 && t + 8 <= n; t += 8) {
        const __m256 q0 = _mm256_loadu_ps(&o[0][at + t]), q1 = _mm256_loadu_ps(&o[1][at + t]), q2 = _mm256_loadu_ps(&o[2][at + t]),
                     q3 = _mm256_loadu_ps(&o[3][at + t]);
        const __m256 l01 = _mm256_unpacklo_ps(q0, q1), l23 = _mm256_unpacklo_ps(q2, q3),
                     h01 = _mm256_unpackhi_ps(q0, q1), h23 = _mm256_unpackhi_ps(q2, q3);
        const __m256 t04 = _mm256_shuffle_ps(l01, l23, 0x44), t15 = _mm256_shuffle_ps(l01, l23, 0xEE),
                     t26 = _mm256_shuffle_ps(h01, h23, 0x44), t37 = _mm256_shuffle_ps(h01, h23, 0xEE);
        float *dst = cat + 4 * t;
        _mm256_storeu_ps(dst, _mm256_permute2f128_ps(t04, t15, 0x20));
        _mm256_storeu_ps(dst + 8, _mm256_permute2f128_ps(t26, t37, 0x20));
        _mm256_storeu_ps(dst + 16, _mm256_permute2f128_ps(t04, t15, 0x31));
        _mm256_storeu_ps(dst + 24, _mm256_permute2f128_ps(t26, t37, 0x31));
    }
#endif
    for (; t < n; t++)
        for (int j = 0; j < m; j++) cat[m * t + j] = o[j][at + t];
    for (int b = 0; b < r->nb; b++) {
        float *dst = row + b * out_stride + c0;
        const float *src = cat + b * span;
        #pragma omp simd
        for (int q = 0; q < cols; q++) dst[q] = acc ? dst[q] + src[q] : src[q];
        if (bias != 0.f || act != DN_ACT_LINEAR) dn_activate_span(dst, cols, bias, act);
    }
}

/* Tile rows per transform run: one image's map narrower than half a run takes several (its
   consecutive tile rows lie side by side in V and M), so that the transforms' SIMD loops run over
   more than one row's 2 or 4 tiles (7x7 to 16x16 maps). */
static int run_rows(int images, int tx) { return images == 1 && 2 * tx <= STRIP ? STRIP / tx : 1; }

/* F(4x4, 3x3): v[p][ci * ld + (r * images + b) * tx + x] for tile rows ty0 .. ty0 + nty of every
   channel of `images` images im_stride apart. */
static void input_transform4(const float *im, int images, size_t im_stride, int c, int h, int w, int ty0, int nty,
                             float *v, size_t pstride, size_t ld)
{
    const int tx = tiles(w, 4), runs = run_count(images, tx), rows = run_rows(images, tx);
    #pragma omp parallel for collapse(3) schedule(static) num_threads(dn_cpu_threads())
    for (int ci = 0; ci < c; ci++)
        for (int r0 = 0; r0 < nty; r0 += rows)
            for (int ri = 0; ri < runs; ri++) {
                const run ru = run_at(images, tx, ri);
                const int per = ru.nb * ru.nx, nr = nty - r0 < rows ? nty - r0 : rows, n = nr * per;
                float rt[6][6][STRIP], d[6][STRIP];
                for (int i = 0; i < 6; i++) {
                    for (int r = 0; r < nr; r++) {
                        const int y = 4 * (ty0 + r0 + r) + i - 1;
                        if (y >= 0 && y < h)
                            gather_row(im + (size_t)ru.b0 * im_stride + ((size_t)ci * h + y) * w, im_stride, w, &ru,
                                       4, d, r * per);
                        else
                            for (int j = 0; j < 6; j++) memset(&d[j][r * per], 0, sizeof(float) * per);
                    }
                    #pragma omp simd
                    for (int t = 0; t < n; t++) {
                        const float d0 = d[0][t], d1 = d[1][t], d2 = d[2][t], d3 = d[3][t], d4 = d[4][t],
                                    d5 = d[5][t];
                        rt[i][0][t] = 4 * d0 - 5 * d2 + d4;
                        rt[i][1][t] = -4 * (d1 + d2) + d3 + d4;
                        rt[i][2][t] = 4 * (d1 - d2) - d3 + d4;
                        rt[i][3][t] = 2 * (d3 - d1) - d2 + d4;
                        rt[i][4][t] = 2 * (d1 - d3) - d2 + d4;
                        rt[i][5][t] = 4 * d1 - 5 * d3 + d5;
                    }
                }
                float *dst = v + (size_t)ci * ld + ((size_t)r0 * images + ru.b0) * tx + ru.x0;
                for (int j = 0; j < 6; j++) {
                    float *o0 = dst + (size_t)j * pstride, *o1 = o0 + 6 * pstride, *o2 = o1 + 6 * pstride,
                          *o3 = o2 + 6 * pstride, *o4 = o3 + 6 * pstride, *o5 = o4 + 6 * pstride;
                    #pragma omp simd
                    for (int t = 0; t < n; t++) {
                        const float d0 = rt[0][j][t], d1 = rt[1][j][t], d2 = rt[2][j][t], d3 = rt[3][j][t],
                                    d4 = rt[4][j][t], d5 = rt[5][j][t];
                        o0[t] = 4 * d0 - 5 * d2 + d4;
                        o1[t] = -4 * (d1 + d2) + d3 + d4;
                        o2[t] = 4 * (d1 - d2) - d3 + d4;
                        o3[t] = 2 * (d3 - d1) - d2 + d4;
                        o4[t] = 2 * (d1 - d3) - d2 + d4;
                        o5[t] = 4 * d1 - 5 * d3 + d5;
                    }
                }
            }
}

/* F(4x4, 3x3): out rows (added to when acc) of tile rows ty0 .. ty0 + nty of `images` images
   out_stride apart from m[p][ki * ld + (r * images + b) * tx + x]. */
static void output_transform4(const float *m, int images, int k, int oh, int ow, int ty0, int nty, float *out,
                              size_t out_stride, size_t pstride, size_t ld, const float *bias, dn_act act, int acc)
{
    const int tx = tiles(ow, 4), runs = run_count(images, tx), rows = run_rows(images, tx);
    #pragma omp parallel for collapse(3) schedule(static) num_threads(dn_cpu_threads())
    for (int ki = 0; ki < k; ki++)
        for (int r0 = 0; r0 < nty; r0 += rows)
            for (int ri = 0; ri < runs; ri++) {
                const run ru = run_at(images, tx, ri);
                const int per = ru.nb * ru.nx, nr = nty - r0 < rows ? nty - r0 : rows, n = nr * per;
                float s[4][6][STRIP], o[4][STRIP];
                const float *src = m + (size_t)ki * ld + ((size_t)r0 * images + ru.b0) * tx + ru.x0;
                for (int j = 0; j < 6; j++) {
                    const float *m0 = src + (size_t)j * pstride, *m1 = m0 + 6 * pstride, *m2 = m1 + 6 * pstride,
                                *m3 = m2 + 6 * pstride, *m4 = m3 + 6 * pstride, *m5 = m4 + 6 * pstride;
                    #pragma omp simd
                    for (int t = 0; t < n; t++) {
                        const float a = m1[t] + m2[t], b = m1[t] - m2[t], c3 = m3[t] + m4[t], d3 = m3[t] - m4[t];
                        s[0][j][t] = m0[t] + a + c3;
                        s[1][j][t] = b + 2 * d3;
                        s[2][j][t] = a + 4 * c3;
                        s[3][j][t] = b + 8 * d3 + m5[t];
                    }
                }
                for (int i = 0; i < 4; i++) {
                    #pragma omp simd
                    for (int t = 0; t < n; t++) {
                        const float a = s[i][1][t] + s[i][2][t], b = s[i][1][t] - s[i][2][t],
                                    c3 = s[i][3][t] + s[i][4][t], d3 = s[i][3][t] - s[i][4][t];
                        o[0][t] = s[i][0][t] + a + c3;
                        o[1][t] = b + 2 * d3;
                        o[2][t] = a + 4 * c3;
                        o[3][t] = b + 8 * d3 + s[i][5][t];
                    }
                    for (int r = 0; r < nr; r++) {
                        const int y = 4 * (ty0 + r0 + r) + i;
                        if (y < oh)
                            scatter_row(o, r * per, &ru, 4,
                                        out + (size_t)ru.b0 * out_stride + ((size_t)ki * oh + y) * ow, out_stride,
                                        ow, bias ? bias[ki] : 0.f, act, acc);
                    }
                }
            }
}

/* F(2x2, 3x3): as input_transform4, 4x4 input tiles at stride 2. */
static void input_transform2(const float *im, int images, size_t im_stride, int c, int h, int w, int ty0, int nty,
                             float *v, size_t pstride, size_t ld)
{
    const int tx = tiles(w, 2), runs = run_count(images, tx);
    #pragma omp parallel for collapse(3) schedule(static) num_threads(dn_cpu_threads())
    for (int ci = 0; ci < c; ci++)
        for (int r = 0; r < nty; r++)
            for (int ri = 0; ri < runs; ri++) {
                const run ru = run_at(images, tx, ri);
                const int ty = ty0 + r, n = ru.nb * ru.nx;
                float rt[4][4][STRIP], d[4][STRIP];
                for (int i = 0; i < 4; i++) {
                    const int y = 2 * ty + i - 1;
                    if (y < 0 || y >= h) {
                        memset(rt[i], 0, sizeof rt[i]);
                        continue;
                    }
                    gather_row(im + (size_t)ru.b0 * im_stride + ((size_t)ci * h + y) * w, im_stride, w, &ru, 2, d, 0);
                    #pragma omp simd
                    for (int t = 0; t < n; t++) {
                        const float d0 = d[0][t], d1 = d[1][t], d2 = d[2][t], d3 = d[3][t];
                        rt[i][0][t] = d0 - d2;
                        rt[i][1][t] = d1 + d2;
                        rt[i][2][t] = d2 - d1;
                        rt[i][3][t] = d1 - d3;
                    }
                }
                float *dst = v + (size_t)ci * ld + ((size_t)r * images + ru.b0) * tx + ru.x0;
                for (int j = 0; j < 4; j++) {
                    float *o0 = dst + (size_t)j * pstride, *o1 = o0 + 4 * pstride, *o2 = o1 + 4 * pstride,
                          *o3 = o2 + 4 * pstride;
                    #pragma omp simd
                    for (int t = 0; t < n; t++) {
                        const float d0 = rt[0][j][t], d1 = rt[1][j][t], d2 = rt[2][j][t], d3 = rt[3][j][t];
                        o0[t] = d0 - d2;
                        o1[t] = d1 + d2;
                        o2[t] = d2 - d1;
                        o3[t] = d1 - d3;
                    }
                }
            }
}

/* F(2x2, 3x3): as output_transform4. */
static void output_transform2(const float *m, int images, int k, int oh, int ow, int ty0, int nty, float *out,
                              size_t out_stride, size_t pstride, size_t ld, const float *bias, dn_act act, int acc)
{
    const int tx = tiles(ow, 2), runs = run_count(images, tx);
    #pragma omp parallel for collapse(3) schedule(static) num_threads(dn_cpu_threads())
    for (int ki = 0; ki < k; ki++)
        for (int r = 0; r < nty; r++)
            for (int ri = 0; ri < runs; ri++) {
                const run ru = run_at(images, tx, ri);
                const int ty = ty0 + r, n = ru.nb * ru.nx;
                float s[2][4][STRIP], o[2][STRIP];
                const float *src = m + (size_t)ki * ld + ((size_t)r * images + ru.b0) * tx + ru.x0;
                for (int j = 0; j < 4; j++) {
                    const float *m0 = src + (size_t)j * pstride, *m1 = m0 + 4 * pstride, *m2 = m1 + 4 * pstride,
                                *m3 = m2 + 4 * pstride;
                    #pragma omp simd
                    for (int t = 0; t < n; t++) {
                        s[0][j][t] = m0[t] + m1[t] + m2[t];
                        s[1][j][t] = m1[t] - m2[t] - m3[t];
                    }
                }
                for (int i = 0; i < 2; i++) {
                    const int y = 2 * ty + i;
                    if (y >= oh) break;
                    #pragma omp simd
                    for (int t = 0; t < n; t++) {
                        o[0][t] = s[i][0][t] + s[i][1][t] + s[i][2][t];
                        o[1][t] = s[i][1][t] - s[i][2][t] - s[i][3][t];
                    }
                    scatter_row(o, 0, &ru, 2, out + (size_t)ru.b0 * out_stride + ((size_t)ki * oh + y) * ow, out_stride,
                                ow, bias ? bias[ki] : 0.f, act, acc);
                }
            }
}

#if VL == 16
/* Products of four tile columns (2x2 tiles of F(4x4, 3x3): maps of 5x5 to 8x8, darknet19's 7x7,
   darknet53's and the CSP nets' 8x8; or four images of one tile side by side): each panel's
   transformed weights are made in registers as the products take them, one row of U's 6x6
   planes at a time, and never stored. Transformed into L2 by slices and read back
   (dn_pgemm_planes), they took longer than the products themselves (perf, 7x7 512 -> 1024), their
   stores and the raw weights' loads contending for L1's misses. */
#define FUSED_TILES 4
#pragma GCC push_options
#pragma GCC optimize("fp-contract=fast") /* the products' multiply-adds fuse, as dn_pgemm's */

/* Row i of the planes of panel p: M_e = U_e V_e for e = 6i .. 6i + 5, over all the channels, U
   unscaled and the sums scaled by the panel's filter scales s at the end. The pass of row 0
   reads the panel from memory (the others from L2); the pass of row 1 fetches the panel `next`
   (>= 0) into L2 meanwhile, for its row 0. */
static inline __attribute__((always_inline)) void fused_row(const packed_filters *f, int p, int next, int i, vf s,
                                                            const float *v, size_t vs, float *mm, size_t ms)
{
    vf acc[6][FUSED_TILES];
    for (int e = 0; e < 6; e++)
        for (int j = 0; j < FUSED_TILES; j++) acc[e][j] = (vf){0};
    for (int q = 0; q < f->c; q++) {
        const float *taps = f->packed + dn_packed_at(9 * f->c, p * DN_PACK_MR, 9 * q);
        if (i == 0) fetch_channel(taps + 9 * PREFETCH_CHANNELS * DN_PACK_MR);
        if (i == 1 && next >= 0) fetch_channel(f->packed + dn_packed_at(9 * f->c, next * DN_PACK_MR, 9 * q));
        vf t[3];
        for (int j = 0; j < 3; j++) {
            vf column[6];
            g_rows(4, 1, *(const vf *)(taps + j * DN_PACK_MR), *(const vf *)(taps + (3 + j) * DN_PACK_MR),
                   *(const vf *)(taps + (6 + j) * DN_PACK_MR), column);
            t[j] = column[i];
        }
        vf r[6];
        g_rows(4, 1, t[0], t[1], t[2], r);
        for (int e = 0; e < 6; e++) {
            const float *b = v + (size_t)(6 * i + e) * vs + (size_t)q * FUSED_TILES;
            for (int j = 0; j < FUSED_TILES; j++) acc[e][j] += r[e] * b[j];
        }
    }
    const int rows = dn_panel_rows(f->k, p);
    for (int e = 0; e < 6; e++)
        for (int j = 0; j < FUSED_TILES; j++) {
            const vf sum = acc[e][j] * s;
            for (int lane = 0; lane < rows; lane++)
                mm[(size_t)(6 * i + e) * ms + (size_t)(p * DN_PACK_MR + lane) * FUSED_TILES + j] = sum[lane];
        }
}

/* M_e = U_e V_e for all 36 planes, U made from the packed weights as it is used. Each thread
   takes every threads-th panel, so that it knows the next one to fetch. */
static void fused_products(const packed_filters *f, const float *v, size_t vs, float *mm, size_t ms)
{
    const int panels = dn_pack_rows(f->k) / DN_PACK_MR;
    #pragma omp parallel num_threads(dn_cpu_threads())
    {
        const int step = omp_get_num_threads();
        for (int p = omp_get_thread_num(); p < panels; p += step) {
            const int next = p + step < panels ? p + step : -1;
            const vf s = filter_scales(f, p * DN_PACK_MR);
            fused_row(f, p, next, 0, s, v, vs, mm, ms);
            fused_row(f, p, next, 1, s, v, vs, mm, ms);
            fused_row(f, p, next, 2, s, v, vs, mm, ms);
            fused_row(f, p, next, 3, s, v, vs, mm, ms);
            fused_row(f, p, next, 4, s, v, vs, mm, ms);
            fused_row(f, p, next, 5, s, v, vs, mm, ms);
        }
    }
}
#pragma GCC pop_options
#endif

/* The weights of run_tiles: U whole (training's, or inference's transformed into the workspace),
   or packed weights transformed as the GEMMs take them, in scratch (inference). */
typedef struct {
    const float *u;
    packed_filters packed;
    float *scratch;
    size_t scratch_n;
} weights;

/* The input transform, per-tap GEMMs and output transform of tile rows ty0 .. ty0 + nty of
   `images` images: tile row by tile row, the images' tiles side by side in v and mm. */
static void run_tiles(const float *im, int images, size_t im_stride, int c, int h, int w, int k, int m,
                      const weights *u, int ty0, int nty, const float *bias, dn_act act, int acc, float *out,
                      size_t out_stride, float *ws)
{
    const int tx = tiles(w, m), a = (m + 2) * (m + 2), nt = images * nty * tx;
    const size_t vs = (size_t)c * nt + PLANE_PAD, ms = (size_t)k * nt + PLANE_PAD;
    float *v = ws, *mm = ws + a * vs;
    if (m == 2) input_transform2(im, images, im_stride, c, h, w, ty0, nty, v, vs, nt);
    else input_transform4(im, images, im_stride, c, h, w, ty0, nty, v, vs, nt);
    if (u->u) dn_pgemm_batch(a, k, nt, c, u->u, wino_plane(k, c), v, vs, nt, mm, ms, nt);
#if VL == 16
    else if (m == 4 && nt == FUSED_TILES) fused_products(&u->packed, v, vs, mm, ms);
#endif
    else dn_pgemm_planes(a, k, nt, c, transform_slice, &u->packed, v, vs, nt, mm, ms, nt, u->scratch, u->scratch_n);
    if (m == 2) output_transform2(mm, images, k, h, w, ty0, nty, out, out_stride, ms, nt, bias, act, acc);
    else output_transform4(mm, images, k, h, w, ty0, nty, out, out_stride, ms, nt, bias, act, acc);
}

/* One image in strips of tile rows, V and M of each in `room` floats. */
static void strips(const float *im, int c, int h, int w, int k, int m, const weights *u, const float *bias,
                   dn_act act, int acc, float *out, float *ws, size_t room)
{
    const int ty = tiles(h, m), rows = strip_rows(c, k, h, w, m, room);
    for (int ty0 = 0; ty0 < ty; ty0 += rows)
        run_tiles(im, 1, 0, c, h, w, k, m, u, ty0, ty - ty0 < rows ? ty - ty0 : rows, bias, act, acc, out, 0, ws);
}

/* Whole images per GEMM batch: as many as WS_LIMIT and `room` floats hold, at most `images`; 0
   where one image takes strips of tile rows. */
static int image_group(int c, int k, int h, int w, int m, int images, size_t room)
{
    const int ty = tiles(h, m);
    if (strip_rows(c, k, h, w, m, room) < ty) return 0;
    const size_t map = (size_t)ty * tiles(w, m), fit = tiles_in(c, k, m, room) / map;
    int n = (int)(WS_LIMIT / ((size_t)(m + 2) * (m + 2) * (c + k) * map));
    if ((size_t)n > fit) n = (int)fit;
    return n < 1 ? 1 : n > images ? images : n;
}

size_t dn_wino_images_workspace(int c, int k, int h, int w, int m, int images)
{
    const size_t strip = strip_floats(c, k, h, w, m);
    const int group = image_group(c, k, h, w, m, images, SIZE_MAX);
    const size_t grouped = tiles_floats(c, k, m, (size_t)group * tiles(h, m) * tiles(w, m));
    return grouped > strip ? grouped : strip;
}

/* `images` images im_stride apart: large maps in strips of tile rows of one image at a time,
   small ones in groups of whole images side by side (one GEMM, and one pass over the weights,
   for the group); V and M in ws, `room` floats. */
static void convolve(const float *im, int images, size_t im_stride, int c, int h, int w, int k, int m,
                     const weights *u, const float *bias, dn_act act, int acc, float *out, size_t out_stride,
                     float *ws, size_t room)
{
    const int group = image_group(c, k, h, w, m, images, room);
    if (!group) {
        for (int b = 0; b < images; b++)
            strips(im + b * im_stride, c, h, w, k, m, u, bias, act, acc, out + b * out_stride, ws, room);
        return;
    }
    for (int b = 0; b < images; b += group)
        run_tiles(im + b * im_stride, images - b < group ? images - b : group, im_stride, c, h, w, k, m, u, 0,
                  tiles(h, m), bias, act, acc, out + b * out_stride, out_stride, ws);
}

void dn_wino_conv3x3_images(const float *im, int images, size_t im_stride, int c, int h, int w, int k, int m,
                            const float *u, int acc, float *out, size_t out_stride, float *ws)
{
    const weights whole = {u};
    convolve(im, images, im_stride, c, h, w, k, m, &whole, NULL, DN_ACT_LINEAR, acc, out, out_stride, ws, SIZE_MAX);
}

/* Whether inference may transform the whole of U at each forward (into the workspace) rather than
   as the GEMMs take it: where U is small enough to be read back from cache. Layers of few
   filters and channels (darknet19's 64 -> 128 and 128 -> 256 on 56x56 and 28x28 maps) ran
   20% slower with the transform in the GEMMs, which read the strip's V once per panel. */
#define WHOLE_U ((size_t)2 << 20) /* floats */
static int whole_u(int k, int c, int m) { return dn_wino_weights_size(k, c, m) <= WHOLE_U; }

/* Floats of the threads' slices of U where the GEMMs transform it. */
static size_t u_slices(int c, int m)
{
    return (size_t)dn_cpu_threads() * dn_pgemm_planes_scratch((m + 2) * (m + 2), c);
}

/* Floats of V and M of the narrowest strip: tile rows of MIN_TILES tiles, or the whole map. */
static size_t least_strip(int c, int k, int h, int w, int m)
{
    const int tx = tiles(w, m), rows = (MIN_TILES + tx - 1) / tx;
    return tiles_floats(c, k, m, (size_t)(rows < tiles(h, m) ? rows : tiles(h, m)) * tx);
}

/* Whether inference in ws_n floats transforms the whole of U: where whole_u allows it and the rest
   of ws_n holds the narrowest strip (else the slices' transform is faster). */
static int transforms_whole_u(int c, int k, int h, int w, int m, size_t ws_n)
{
    return whole_u(k, c, m) && ws_n >= dn_wino_weights_size(k, c, m) + least_strip(c, k, h, w, m);
}

size_t dn_wino_workspace(int c, int k, int h, int w, int m, int images, size_t room)
{
    const size_t u = whole_u(k, c, m) ? dn_wino_weights_size(k, c, m) : u_slices(c, m);
    const size_t best = dn_wino_images_workspace(c, k, h, w, m, images) + u;
    const size_t least = u_slices(c, m) + least_strip(c, k, h, w, m);
    if (best <= room || best <= least) return best;
    return room > least ? room : least;
}

/* The weights are transformed once for all the images: whole (into the start of the workspace), or
   once per group or strip; V and M take the rest of ws. */
void dn_wino_conv3x3(const float *im, int images, size_t im_stride, int c, int h, int w, int k, int m,
                     const float *packed, const float *scale, const float *bias, dn_act act, float *out,
                     size_t out_stride, float *ws, size_t ws_n)
{
    const int whole = transforms_whole_u(c, k, h, w, m, ws_n);
    /* slices: a workspace planned at fewer threads (before set_threads) runs fewer; V and M start
       on a cache line */
    const size_t slices = u_slices(c, m), most = (ws_n - least_strip(c, k, h, w, m)) / 16 * 16;
    const size_t u_n = whole ? dn_wino_weights_size(k, c, m) : slices < most ? slices : most;
    weights u = {NULL, {packed, scale, k, c, m}, ws, u_n};
    if (whole) { /* panel by panel */
        #pragma omp parallel for schedule(static) num_threads(dn_cpu_threads())
        for (int p = 0; p < dn_pack_rows(k) / DN_PACK_MR; p++)
            transform_slice(&u.packed, p, 0, c, ws + dn_packed_at(c, p * DN_PACK_MR, 0), wino_plane(k, c));
        u.u = ws;
    }
    convolve(im, images, im_stride, c, h, w, k, m, &u, bias, act, 0, out, out_stride, ws + u_n, ws_n - u_n);
}
