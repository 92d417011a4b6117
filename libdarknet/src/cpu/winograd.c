/* Winograd F(4x4, 3x3) and F(2x2, 3x3) for 3x3, stride-1, pad-1 convolutions
   at inference (Lavin & Gray, "Fast Algorithms for Convolutional Neural
   Networks", 2015; the B, G, A matrices are theirs).

   m x m output tiles read a x a input tiles, a = m + 2. Per strip of tile rows:
     V[a*a][C][T] = B^T d B   for every tile t and input channel
     M[a*a][K][T] = U[a*a][K][C] x V[a*a][C][T]   (a*a GEMMs, U packed: pgemm.c)
     out          = A^T m A   scattered back into the output planes
   The transforms run over up to STRIP tiles of one tile row at a time, laid
   out tile-innermost so every arithmetic loop is a contiguous SIMD loop; the
   stride-4 gather of input rows and scatter of output rows use AVX2
   transposes where available, scalar copies elsewhere. Strips of tile rows
   bound V and M to a few MiB. */
#include <string.h>
#ifdef __AVX2__
#include <immintrin.h>
#endif

#include "cpu.h"

#define STRIP 64                      /* tiles per transform run */
#define WS_LIMIT ((size_t)1 << 20)    /* floats of V + M per strip of tile rows: 3 << 20 was no faster */
/* floats between the (m+2)^2 planes of V and of M: plane strides that are
   multiples of 4 KiB put the transforms' dozens of streams in the same cache
   sets (up to 2x slower on some map sizes) */
#define PLANE_PAD 16
#define WB 16                         /* filters per vectorised weight transform */

static int tiles(int n, int m) { return (n + m - 1) / m; }

/* Tile rows per strip: V and M of a strip within WS_LIMIT, but at least
   enough tiles for an efficient GEMM. */
static int strip_rows(int c, int k, int h, int w, int m)
{
    const int tx = tiles(w, m), ty = tiles(h, m), a = (m + 2) * (m + 2);
    const size_t per_row = (size_t)a * (c + k) * tx;
    int rows = (int)(WS_LIMIT / per_row);
    const int min_rows = (256 + tx - 1) / tx;
    if (rows < min_rows) rows = min_rows;
    if (rows > ty) rows = ty;
    if (rows < 1) rows = 1;
    return rows;
}

/* The output tile size, 4 for F(4x4, 3x3) or 2 for F(2x2, 3x3), that beats
   im2col + GEMM here, else 0. Cost per (filter, channel) pair in
   multiply-adds: (m+2)^2 per tile against 9 per pixel, plus the weights GEMM
   packs each forward ((m+2)^2 against 9): when they do not fit in cache
   (measured on AVX2) one streamed weight costs about as much as 27
   multiply-adds, which makes small maps (7x7 at 512 -> 1024) stay on im2col
   and mid-sized ones (8x8 to 16x16) take 2x2 tiles. */
int dn_wino_tile(int c, int k, int h, int w)
{
    /* few input channels (a first layer): the transforms' traffic outweighs the GEMMs */
    if (c < 16) return 0;
    const long beta = (size_t)36 * k * c > ((size_t)1 << 20) ? 27 : 0;
    const long im2col = 9L * h * w + 9 * beta;
    const long f2 = 16L * tiles(h, 2) * tiles(w, 2) + 16 * beta;
    const long f4 = 36L * tiles(h, 4) * tiles(w, 4) + 36 * beta;
    const long best = f4 <= f2 ? f4 : f2;
    if (10 * best >= 9 * im2col) return 0;
    return f4 <= f2 ? 4 : 2;
}

/* Training's tile size: as dn_wino_tile without the weights' streaming cost (the GEMMs of many
   images share each pass over the weights), F(2x2, 3x3) on ties (fewer rounding steps), and
   im2col where c or k is small (narrow GEMMs, transforms not amortised). */
int dn_wino_train_tile(int c, int k, int h, int w)
{
    if (c < 16 || k < 16) return 0;
    const long im2col = 9L * h * w, f2 = 16L * tiles(h, 2) * tiles(w, 2), f4 = 36L * tiles(h, 4) * tiles(w, 4);
    const long best = f4 < f2 ? f4 : f2;
    if (10 * best >= 9 * im2col) return 0;
    return f4 < f2 ? 4 : 2;
}

size_t dn_wino_workspace(int c, int k, int h, int w, int m)
{
    return (size_t)(m + 2) * (m + 2) * ((size_t)(c + k) * strip_rows(c, k, h, w, m) * tiles(w, m) + 2 * PLANE_PAD);
}

/* u[a*a][packed (k, c)] = G g G^T for each filter g (k, c, 3, 3), a = m + 2; with `backward`, the filters
   of the input delta's convolution instead: u[a*a][packed (c, k)] from g rotated by 180 degrees. */
static void weights_transform(const float *w, int k, int c, int m, int backward, float *u)
{
    static const float G2[4][3] = {{1, 0, 0}, {.5f, .5f, .5f}, {.5f, -.5f, .5f}, {0, 0, 1}};
    static const float G[6][3] = {{1 / 4.f, 0, 0},
                                  {-1 / 6.f, -1 / 6.f, -1 / 6.f},
                                  {-1 / 6.f, 1 / 6.f, -1 / 6.f},
                                  {1 / 24.f, 1 / 12.f, 1 / 6.f},
                                  {1 / 24.f, -1 / 12.f, 1 / 6.f},
                                  {0, 0, 1}};
    const int a = m + 2, rows = backward ? c : k, cols = backward ? k : c;
    const size_t kc = dn_pack_size(rows, cols);
    const float(*g4)[3] = m == 2 ? G2 : G;
    /* row `o` of each u plane, WB filters at a time, vectorised across them */
    #pragma omp parallel for collapse(2) schedule(static) num_threads(dn_cpu_threads())
    for (int o = 0; o < rows; o++)
        for (int i0 = 0; i0 < cols; i0 += WB) {
            const int nb = cols - i0 < WB ? cols - i0 : WB;
            float g[9][WB], t[6][3][WB];
            for (int j = 0; j < nb; j++) {
                const int f = backward ? i0 + j : o, ci = backward ? o : i0 + j;
                const float *w9 = w + ((size_t)f * c + ci) * 9;
                for (int q = 0; q < 9; q++) g[q][j] = w9[backward ? 8 - q : q];
            }
            for (int i = 0; i < a; i++)
                for (int q = 0; q < 3; q++) {
                    #pragma omp simd
                    for (int j = 0; j < nb; j++)
                        t[i][q][j] = g4[i][0] * g[q][j] + g4[i][1] * g[3 + q][j] + g4[i][2] * g[6 + q][j];
                }
            for (int i = 0; i < a; i++)
                for (int q = 0; q < a; q++) {
                    float *dst = u + (i * a + q) * kc;
                    for (int j = 0; j < nb; j++)
                        dst[dn_packed_at(cols, o, i0 + j)] =
                            t[i][0][j] * g4[q][0] + t[i][1][j] * g4[q][1] + t[i][2][j] * g4[q][2];
                }
        }
}

size_t dn_wino_weights_size(int k, int c, int m) { return (size_t)(m + 2) * (m + 2) * dn_pack_size(k, c); }

void dn_wino_weights(const float *w, int k, int c, int m, float *u) { weights_transform(w, k, c, m, 0, u); }

void dn_wino_weights_backward(const float *w, int k, int c, int m, float *u) { weights_transform(w, k, c, m, 1, u); }

/* v[p][ci * ld + r * tx + x] for tile rows ty0 .. ty0 + nty of every channel. */
static void input_transform4(const float *im, int c, int h, int w, int ty0, int nty, float *v, size_t pstride,
                             size_t ld)
{
    const int tx = tiles(w, 4);
    #pragma omp parallel for collapse(2) schedule(static) num_threads(dn_cpu_threads())
    for (int ci = 0; ci < c; ci++)
        for (int r = 0; r < nty; r++) {
            const float *plane = im + (size_t)ci * h * w;
            const int ty = ty0 + r;
            for (int x0 = 0; x0 < tx; x0 += STRIP) {
                const int n = tx - x0 < STRIP ? tx - x0 : STRIP;
                /* the row under these tiles, zero outside the image: buf[i] = row[4 * x0 - 1 + i] */
                float d[6][STRIP], rt[6][6][STRIP], buf[4 * STRIP + 8];
                const int nb = 4 * n + 2, xb = 4 * x0 - 1;
                for (int i = 0; i < 6; i++) {
                    const int y = 4 * ty + i - 1;
                    if (y < 0 || y >= h) {
                        memset(rt[i], 0, sizeof rt[i]);
                        continue;
                    }
                    const float *row = plane + (size_t)y * w;
                    const int lo = xb < 0 ? -xb : 0, hi = xb + nb > w ? w - xb : nb;
                    for (int q = 0; q < lo; q++) buf[q] = 0.f;
                    memcpy(buf + lo, row + xb + lo, sizeof(float) * (hi - lo));
                    for (int q = hi; q < 4 * n + 8; q++) buf[q] = 0.f;
                    int t = 0;
#ifdef __AVX2__
                    /* 8 tiles: four 4-float groups per load pair, transposed to d[j][t..t+8] */
                    for (; t + 8 <= n; t += 8) {
                        const float *bp = buf + 4 * t;
                        for (int half = 0; half < 2; half++) {
                            const float *b0 = bp + 4 * half;
                            const __m256 a0 = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(b0)),
                                                                   _mm_loadu_ps(b0 + 16), 1);
                            const __m256 a1 = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(b0 + 4)),
                                                                   _mm_loadu_ps(b0 + 20), 1);
                            const __m256 a2 = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(b0 + 8)),
                                                                   _mm_loadu_ps(b0 + 24), 1);
                            const __m256 a3 = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(b0 + 12)),
                                                                   _mm_loadu_ps(b0 + 28), 1);
                            const __m256 l01 = _mm256_unpacklo_ps(a0, a1), l23 = _mm256_unpacklo_ps(a2, a3);
                            _mm256_storeu_ps(&d[4 * half][t], _mm256_shuffle_ps(l01, l23, 0x44));
                            _mm256_storeu_ps(&d[4 * half + 1][t], _mm256_shuffle_ps(l01, l23, 0xEE));
                            if (half) break;
                            const __m256 h01 = _mm256_unpackhi_ps(a0, a1), h23 = _mm256_unpackhi_ps(a2, a3);
                            _mm256_storeu_ps(&d[2][t], _mm256_shuffle_ps(h01, h23, 0x44));
                            _mm256_storeu_ps(&d[3][t], _mm256_shuffle_ps(h01, h23, 0xEE));
                        }
                    }
#endif
                    for (; t < n; t++)
                        for (int j = 0; j < 6; j++) d[j][t] = buf[4 * t + j];
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
                float *dst = v + (size_t)ci * ld + (size_t)r * tx + x0;
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
}

#ifdef __AVX2__
/* dst = v, or dst += v when acc */
static inline void store8(float *dst, __m256 v, int acc)
{
    _mm256_storeu_ps(dst, acc ? _mm256_add_ps(_mm256_loadu_ps(dst), v) : v);
}
#endif

/* out rows (added to when acc) of tile rows ty0 .. ty0 + nty from m[p][ki][r * tx + x], kernel ki's
   planes ld floats apart. */
static void output_transform4(const float *m, int k, int oh, int ow, int ty0, int nty, float *out, size_t pstride,
                              size_t ld, const float *bias, dn_act act, int acc)
{
    const int tx = tiles(ow, 4);
    #pragma omp parallel for collapse(2) schedule(static) num_threads(dn_cpu_threads())
    for (int ki = 0; ki < k; ki++)
        for (int r = 0; r < nty; r++) {
            float *plane = out + (size_t)ki * oh * ow;
            const int ty = ty0 + r;
            for (int x0 = 0; x0 < tx; x0 += STRIP) {
                const int n = tx - x0 < STRIP ? tx - x0 : STRIP;
                float s[4][6][STRIP], o[4][STRIP];
                const float *src = m + (size_t)ki * ld + (size_t)r * tx + x0;
                for (int j = 0; j < 6; j++) {
                    const float *m0 = src + (size_t)j * pstride, *m1 = m0 + 6 * pstride, *m2 = m1 + 6 * pstride,
                                *m3 = m2 + 6 * pstride, *m4 = m3 + 6 * pstride, *m5 = m4 + 6 * pstride;
                    #pragma omp simd
                    for (int t = 0; t < n; t++) {
                        const float a = m1[t] + m2[t], b = m1[t] - m2[t], c3 = m3[t] + m4[t],
                                    d3 = m3[t] - m4[t];
                        s[0][j][t] = m0[t] + a + c3;
                        s[1][j][t] = b + 2 * d3;
                        s[2][j][t] = a + 4 * c3;
                        s[3][j][t] = b + 8 * d3 + m5[t];
                    }
                }
                for (int i = 0; i < 4; i++) {
                    const int y = 4 * ty + i;
                    if (y >= oh) break;
                    #pragma omp simd
                    for (int t = 0; t < n; t++) {
                        const float a = s[i][1][t] + s[i][2][t], b = s[i][1][t] - s[i][2][t],
                                    c3 = s[i][3][t] + s[i][4][t], d3 = s[i][3][t] - s[i][4][t];
                        o[0][t] = s[i][0][t] + a + c3;
                        o[1][t] = b + 2 * d3;
                        o[2][t] = a + 4 * c3;
                        o[3][t] = b + 8 * d3 + s[i][5][t];
                    }
                    float *row = plane + (size_t)y * ow;
                    int t = 0;
#ifdef __AVX2__
                    /* 8 whole tiles: transpose o[j][t..t+8] into 32 consecutive outputs */
                    for (; t + 8 <= n && 4 * (x0 + t + 8) <= ow; t += 8) {
                        const __m256 q0 = _mm256_loadu_ps(&o[0][t]), q1 = _mm256_loadu_ps(&o[1][t]),
                                     q2 = _mm256_loadu_ps(&o[2][t]), q3 = _mm256_loadu_ps(&o[3][t]);
                        const __m256 l01 = _mm256_unpacklo_ps(q0, q1), l23 = _mm256_unpacklo_ps(q2, q3),
                                     h01 = _mm256_unpackhi_ps(q0, q1), h23 = _mm256_unpackhi_ps(q2, q3);
                        const __m256 t04 = _mm256_shuffle_ps(l01, l23, 0x44), t15 = _mm256_shuffle_ps(l01, l23, 0xEE),
                                     t26 = _mm256_shuffle_ps(h01, h23, 0x44), t37 = _mm256_shuffle_ps(h01, h23, 0xEE);
                        float *dst = row + 4 * (x0 + t);
                        store8(dst, _mm256_permute2f128_ps(t04, t15, 0x20), acc);
                        store8(dst + 8, _mm256_permute2f128_ps(t26, t37, 0x20), acc);
                        store8(dst + 16, _mm256_permute2f128_ps(t04, t15, 0x31), acc);
                        store8(dst + 24, _mm256_permute2f128_ps(t26, t37, 0x31), acc);
                    }
#endif
                    for (; t < n; t++) {
                        const int x = 4 * (x0 + t);
                        for (int j = 0; j < 4 && x + j < ow; j++) row[x + j] = acc ? row[x + j] + o[j][t] : o[j][t];
                    }
                    const int x_end = 4 * (x0 + n) < ow ? 4 * (x0 + n) : ow;
                    if (bias || act != DN_ACT_LINEAR)
                        dn_activate_span(row + 4 * x0, x_end - 4 * x0, bias ? bias[ki] : 0.f, act);
                }
            }
        }
}

/* F(2x2, 3x3): v[p][ci * ld + r * tx + x], 4x4 input tiles at stride 2. */
static void input_transform2(const float *im, int c, int h, int w, int ty0, int nty, float *v, size_t pstride,
                             size_t ld)
{
    const int tx = tiles(w, 2);
    #pragma omp parallel for collapse(2) schedule(static) num_threads(dn_cpu_threads())
    for (int ci = 0; ci < c; ci++)
        for (int r = 0; r < nty; r++) {
            const float *plane = im + (size_t)ci * h * w;
            const int ty = ty0 + r;
            for (int x0 = 0; x0 < tx; x0 += STRIP) {
                const int n = tx - x0 < STRIP ? tx - x0 : STRIP;
                float rt[4][4][STRIP], buf[2 * STRIP + 4];
                const int nb = 2 * n + 2, xb = 2 * x0 - 1;
                for (int i = 0; i < 4; i++) {
                    const int y = 2 * ty + i - 1;
                    if (y < 0 || y >= h) {
                        memset(rt[i], 0, sizeof rt[i]);
                        continue;
                    }
                    const float *row = plane + (size_t)y * w;
                    const int lo = xb < 0 ? -xb : 0, hi = xb + nb > w ? w - xb : nb;
                    for (int q = 0; q < lo; q++) buf[q] = 0.f;
                    memcpy(buf + lo, row + xb + lo, sizeof(float) * (hi - lo));
                    for (int q = hi; q < nb; q++) buf[q] = 0.f;
                    #pragma omp simd
                    for (int t = 0; t < n; t++) {
                        const float d0 = buf[2 * t], d1 = buf[2 * t + 1], d2 = buf[2 * t + 2], d3 = buf[2 * t + 3];
                        rt[i][0][t] = d0 - d2;
                        rt[i][1][t] = d1 + d2;
                        rt[i][2][t] = d2 - d1;
                        rt[i][3][t] = d1 - d3;
                    }
                }
                float *dst = v + (size_t)ci * ld + (size_t)r * tx + x0;
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
}

/* F(2x2, 3x3): as output_transform4. */
static void output_transform2(const float *m, int k, int oh, int ow, int ty0, int nty, float *out, size_t pstride,
                              size_t ld, const float *bias, dn_act act, int acc)
{
    const int tx = tiles(ow, 2);
    #pragma omp parallel for collapse(2) schedule(static) num_threads(dn_cpu_threads())
    for (int ki = 0; ki < k; ki++)
        for (int r = 0; r < nty; r++) {
            float *plane = out + (size_t)ki * oh * ow;
            const int ty = ty0 + r;
            for (int x0 = 0; x0 < tx; x0 += STRIP) {
                const int n = tx - x0 < STRIP ? tx - x0 : STRIP;
                float s[2][4][STRIP], o[2][STRIP];
                const float *src = m + (size_t)ki * ld + (size_t)r * tx + x0;
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
                    float *row = plane + (size_t)y * ow;
                    for (int t = 0; t < n; t++) {
                        const int x = 2 * (x0 + t);
                        row[x] = acc ? row[x] + o[0][t] : o[0][t];
                        if (x + 1 < ow) row[x + 1] = acc ? row[x + 1] + o[1][t] : o[1][t];
                    }
                    const int x_end = 2 * (x0 + n) < ow ? 2 * (x0 + n) : ow;
                    if (bias || act != DN_ACT_LINEAR)
                        dn_activate_span(row + 2 * x0, x_end - 2 * x0, bias ? bias[ki] : 0.f, act);
                }
            }
        }
}

/* The input transform, per-tap GEMMs and output transform of tile rows ty0 .. ty0 + nty of
   `images` images (each `nty` tile rows of one image when images > 1): their tiles side by side
   in v and mm, image after image. */
static void run_tiles(const float *im, int images, size_t im_stride, int c, int h, int w, int k, int m,
                      const float *u, int ty0, int nty, const float *bias, dn_act act, int acc, float *out,
                      size_t out_stride, float *ws)
{
    const int tx = tiles(w, m), a = (m + 2) * (m + 2), per = nty * tx, nt = images * per;
    const size_t vs = (size_t)c * nt + PLANE_PAD, ms = (size_t)k * nt + PLANE_PAD;
    float *v = ws, *mm = ws + a * vs;
    for (int b = 0; b < images; b++) {
        if (m == 2) input_transform2(im + b * im_stride, c, h, w, ty0, nty, v + b * per, vs, nt);
        else input_transform4(im + b * im_stride, c, h, w, ty0, nty, v + b * per, vs, nt);
    }
    dn_pgemm_batch(a, k, nt, c, u, dn_pack_size(k, c), v, vs, nt, mm, ms, nt);
    for (int b = 0; b < images; b++) {
        if (m == 2) output_transform2(mm + b * per, k, h, w, ty0, nty, out + b * out_stride, ms, nt, bias, act, acc);
        else output_transform4(mm + b * per, k, h, w, ty0, nty, out + b * out_stride, ms, nt, bias, act, acc);
    }
}

/* One image in strips of tile rows. */
static void strips(const float *im, int c, int h, int w, int k, int m, const float *u, const float *bias, dn_act act,
                   int acc, float *out, float *ws)
{
    const int ty = tiles(h, m), rows = strip_rows(c, k, h, w, m);
    for (int ty0 = 0; ty0 < ty; ty0 += rows)
        run_tiles(im, 1, 0, c, h, w, k, m, u, ty0, ty - ty0 < rows ? ty - ty0 : rows, bias, act, acc, out, 0, ws);
}

/* out (k, h, w) = act(conv3x3(im (c, h, w)) + bias) with stride 1, pad 1, on
   m x m output tiles (2 or 4), the bias and activation applied to each output
   row as the output transform writes it; u from dn_wino_weights; ws holds
   dn_wino_workspace(c, k, h, w, m) floats. */
void dn_wino_conv3x3(const float *im, int c, int h, int w, int k, int m, const float *u, const float *bias,
                     dn_act act, float *out, float *ws)
{
    strips(im, c, h, w, k, m, u, bias, act, 0, out, ws);
}

/* Whole images per GEMM batch in dn_wino_conv3x3_images: as many as WS_LIMIT holds, at most
   `images`; 0 where one image takes strips of tile rows. */
static int image_group(int c, int k, int h, int w, int m, int images)
{
    const int ty = tiles(h, m);
    if (strip_rows(c, k, h, w, m) < ty) return 0;
    const size_t per_image = (size_t)(m + 2) * (m + 2) * (c + k) * ty * tiles(w, m);
    const int n = (int)(WS_LIMIT / per_image);
    return n < 1 ? 1 : n > images ? images : n;
}

size_t dn_wino_images_workspace(int c, int k, int h, int w, int m, int images)
{
    const size_t strip = dn_wino_workspace(c, k, h, w, m);
    const int group = image_group(c, k, h, w, m, images);
    const size_t grouped = (size_t)(m + 2) * (m + 2) *
                           ((size_t)(c + k) * group * tiles(h, m) * tiles(w, m) + 2 * PLANE_PAD);
    return grouped > strip ? grouped : strip;
}

void dn_wino_conv3x3_images(const float *im, int images, size_t im_stride, int c, int h, int w, int k, int m,
                            const float *u, int acc, float *out, size_t out_stride, float *ws)
{
    const int group = image_group(c, k, h, w, m, images);
    if (!group) { /* large maps: strips of tile rows of one image at a time */
        for (int b = 0; b < images; b++)
            strips(im + b * im_stride, c, h, w, k, m, u, NULL, DN_ACT_LINEAR, acc, out + b * out_stride, ws);
        return;
    }
    for (int b = 0; b < images; b += group)
        run_tiles(im + b * im_stride, images - b < group ? images - b : group, im_stride, c, h, w, k, m, u, 0,
                  tiles(h, m), NULL, DN_ACT_LINEAR, acc, out + b * out_stride, out_stride, ws);
}
