/* The CPU backend's internal API. Every file in cpu/ is compiled once per
   instruction-set level (DN_ISA: base, avx2, avx512) and the level is picked at
   run time (dispatch.c), so each external name here is remapped to a per-level
   symbol: cpu/ code calls dn_gemm, the linker sees dn_cpu_avx2_gemm. */
#ifndef DN_CPU_H
#define DN_CPU_H

#include <math.h>

#include "../dn.h"

#ifndef DN_ISA
#define DN_ISA base
#endif
#define DN_CPU_CAT_(isa, name) dn_cpu_##isa##_##name
#define DN_CPU_CAT(isa, name) DN_CPU_CAT_(isa, name)
#define DN_CPU(name) DN_CPU_CAT(DN_ISA, name)

/* ---- threads (dispatch.c, compiled once) -------------------------------- */

/* OpenMP threads for the calling thread's current network call: every parallel
   loop in cpu/ asks for this many (num_threads clause), so one network's setting
   never leaks into another's or into the caller's OpenMP state. 1 in a child
   made by fork(), where the parent's OpenMP pool does not exist. */
int dn_cpu_threads(void);
void dn_cpu_set_threads(int threads);

/* ---- activate.c (spec §3.4) --------------------------------------------- */

#define dn_activate_bias DN_CPU(activate_bias)
#define dn_activate DN_CPU(activate)
#define dn_activate_grad DN_CPU(activate_grad)
#define dn_activate_grad_span DN_CPU(activate_grad_span)
#define dn_act_mixes_channels DN_CPU(act_mixes_channels)
#define dn_activate_span DN_CPU(activate_span)
#define dn_activate_affine DN_CPU(activate_affine)
#define dn_activate_affine_span DN_CPU(activate_affine_span)
/* x = act(x + bias[channel]) in one pass over (batch, c, spatial); bias may be NULL. */
void dn_activate_bias(float *x, const float *bias, int batch, int c, int spatial, dn_act a);
/* x[i] = act(x[i] + bias) for i < n, in the calling thread; not the channel-normalising kinds. */
void dn_activate_span(float *x, int n, float bias, dn_act a);
/* x = act(x * scale[channel] + bias[channel]): a convolution's folded batch norm in its
   output pass; scale and bias may be NULL. */
void dn_activate_affine(float *x, const float *scale, const float *bias, int batch, int c, int spatial, dn_act a);
/* x[i] = act(x[i] * scale + bias) for i < n, as dn_activate_span. */
void dn_activate_affine_span(float *x, int n, float scale, float bias, dn_act a);
/* In place on (batch, c, spatial). */
void dn_activate(float *x, int batch, int c, int spatial, dn_act a);
/* delta *= f'(.) given the output y and, where needed, the pre-activation x. */
void dn_activate_grad(const float *x, const float *y, int batch, int c, int spatial, dn_act a, float *delta);
/* delta *= f'(.) over n consecutive values, for kinds where dn_act_mixes_channels is 0. */
void dn_activate_grad_span(const float *x, const float *y, long n, dn_act a, float *delta);
/* Whether the activation normalises across channels (its gradient at a pixel mixes them). */
int dn_act_mixes_channels(dn_act a);

/* In place over n scores: upstream's softmax() (largest subtracted, exp in double). */
static inline void dn_softmax_inplace(float *x, int n)
{
    float largest = -INFINITY, sum = 0;
    for (int j = 0; j < n; j++) largest = x[j] > largest ? x[j] : largest;
    for (int j = 0; j < n; j++) sum += x[j] = (float)exp(x[j] - largest);
    for (int j = 0; j < n; j++) x[j] /= sum;
}

/* ---- bn.c: batch normalisation and bias (spec §3.3, §4.4) ---------------- */

#define dn_bn_forward DN_CPU(bn_forward)
#define dn_bn_backward DN_CPU(bn_backward)
#define dn_add_bias DN_CPU(add_bias)
#define dn_backward_bias DN_CPU(backward_bias)
#define dn_act_bias_bn_backward DN_CPU(act_bias_bn_backward)
/* y (batch, n, spatial) in place: normalise and scale, then y = act(y + bias[channel]) (bias may be
   NULL; act a per-element kind, not dn_act_mixes_channels). */
void dn_bn_forward(dn_bn *bn, float *y, int batch, int training, const float *bias, dn_act act);
/* Backward through scale and normalisation; delta in place. */
void dn_bn_backward(dn_bn *bn, float *delta, int batch);
/* Add bias per channel. */
void dn_add_bias(float *y, const float *bias, int batch, int n, int spatial);
/* bias_updates[f] += sum of delta over batch and pixels. */
void dn_backward_bias(float *bias_updates, const float *delta, int batch, int n, int spatial);
/* Backward through activation, bias and batch norm (bn may be NULL) in two passes over delta
   (batch, n, spatial), in place: delta *= f'(.) given the pre-activation x (where needed) and
   output y; bias_updates (may be NULL) and bn's scale updates get their sums. */
void dn_act_bias_bn_backward(dn_bn *bn, const float *x, const float *y, dn_act a, int batch, int n, int spatial,
                             float *bias_updates, float *delta);

/* ---- gemm.c: GEMM through OpenBLAS, im2col, SGD -------------------------- */

#define dn_gemm DN_CPU(gemm)
#define dn_gemm_serial DN_CPU(gemm_serial)
#define dn_im2col DN_CPU(im2col)
#define dn_im2col_rows DN_CPU(im2col_rows)
#define dn_col2im_add DN_CPU(col2im_add)
#define dn_col_stride DN_CPU(col_stride)
#define dn_sgd DN_CPU(sgd)
/* Row-major C = alpha*op(A)*op(B) + beta*C. */
void dn_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
             const float *b, int ldb, float beta, float *c, int ldc);
/* Row-major C = A * B (no transposes, beta 0) in the calling thread. */
void dn_gemm_serial(int m, int n, int k, const float *a, int lda, const float *b, int ldb, float *c, int ldc);
/* col (c*size*size, out_h*out_w), rows ld apart, from im (c, h, w). */
void dn_im2col(const float *im, const dn_conv_geom *g, float *col, int ld);
/* The columns of output rows oy0 .. oy1 only: col (c*size*size, (oy1-oy0)*out_w), rows ld apart, in the
   calling thread. */
void dn_im2col_rows(const float *im, const dn_conv_geom *g, int oy0, int oy1, float *col, int ld);
/* The row stride for len columns that a GEMM reads fastest: whole cache lines, an odd number of them (rows
   a power of two of lines apart fall in a few cache sets; 1024 floats apart, a 3x3 layer's GEMM ran 6%
   slower). */
int dn_col_stride(int len);
/* im += col2im(col). */
void dn_col2im_add(const float *col, const dn_conv_geom *g, float *im);
/* Momentum SGD on one tensor: U -= decay*B*W; W += lr/B*U; U *= m. */
void dn_sgd(float *w, float *u, size_t n, const dn_update *up, float lr, int decay);

/* ---- pgemm.c: GEMM on weights packed once at prepare (inference) ----------- */

/* Rows per packed panel: one AVX-512 vector, two vectors of the other levels (their 16
   registers hold 2 x 6 accumulators; one vector x 12 ran at two thirds of the speed). */
#if defined(__AVX512F__) || defined(__AVX2__)
#define DN_PACK_MR 16
#else
#define DN_PACK_MR 8
#endif
#define dn_pack_size DN_CPU(pack_size)
#define dn_pgemm DN_CPU(pgemm)
#define dn_pgemm_serial DN_CPU(pgemm_serial)
#define dn_pgemm_batch DN_CPU(pgemm_batch)
/* Where element (r, q) of an (m, k) matrix lies in its packed copy: panels of
   DN_PACK_MR rows (the last padded with zero rows), each stored k-major. */
static inline size_t dn_packed_at(int k, int r, int q)
{
    return (size_t)(r / DN_PACK_MR) * DN_PACK_MR * k + (size_t)q * DN_PACK_MR + r % DN_PACK_MR;
}
/* rows of the packed copy of an (m, k) matrix: m padded to whole panels */
static inline int dn_pack_rows(int m) { return (m + DN_PACK_MR - 1) / DN_PACK_MR * DN_PACK_MR; }
/* rows of panel p of an (m, k) matrix that are its own (the rest: padding) */
static inline int dn_panel_rows(int m, int p) { return m - p * DN_PACK_MR < DN_PACK_MR ? m - p * DN_PACK_MR : DN_PACK_MR; }
/* floats of the packed copy of an (m, k) matrix */
size_t dn_pack_size(int m, int k);
/* Row-major C (m, n) = A * B (k, n), A packed (dn_packed_at): split across threads / in the
   calling thread / count independent products. */
void dn_pgemm(int m, int n, int k, const float *ap, const float *b, int ldb, float *c, int ldc);
void dn_pgemm_serial(int m, int n, int k, const float *ap, const float *b, int ldb, float *c, int ldc);
void dn_pgemm_batch(int count, int m, int n, int k, const float *ap, size_t stride_a, const float *b,
                    size_t stride_b, int ldb, float *c, size_t stride_c, int ldc);
/* count products C_e (m, n) = A_e (m, k) * B_e (k, n), e < count, whose packed A's are made as they
   are used: pack(ctx, p, q0, steps, dst, plane) writes panel p's steps columns from q0 of every A_e,
   A_e's at dst + e * plane (each as a packed panel of `steps` columns). scratch: scratch_n
   floats, dn_pgemm_planes_scratch per thread (fewer threads run where it holds fewer). */
#define dn_pgemm_planes DN_CPU(pgemm_planes)
#define dn_pgemm_planes_scratch DN_CPU(pgemm_planes_scratch)
typedef void (*dn_pack_slice)(const void *ctx, int p, int q0, int steps, float *dst, size_t plane);
void dn_pgemm_planes(int count, int m, int n, int k, dn_pack_slice pack, const void *ctx, const float *b,
                     size_t stride_b, int ldb, float *c, size_t stride_c, int ldc, float *scratch, size_t scratch_n);
size_t dn_pgemm_planes_scratch(int count, int k);

/* ---- conv_train.c: a convolution's training GEMMs (spec §4.3) ---- */

struct conv;
#define dn_conv_forward_gemms DN_CPU(conv_forward_gemms)
#define dn_conv_backward_gemms DN_CPU(conv_backward_gemms)
/* out = weights * columns of `batch` images (input planes of in_plane pixels, `inputs`/`outputs`
   floats per image), no bias; scratch as below. */
dn_status dn_conv_forward_gemms(const struct conv *p, int batch, const float *in, int inputs, const float *weights,
                                float *out, int outputs, int in_plane, int spatial, dn_ctx *ctx);
/* dw (may be NULL) += the weight gradient, in_delta (may be NULL) += the input delta of `batch`
   images; scratch comes
   from ctx's workspace, grown the first time it is too small. */
dn_status dn_conv_backward_gemms(const struct conv *p, int batch, const float *in, int inputs, const float *delta,
                                 int outputs, const float *weights, float *dw, float *in_delta, int in_plane,
                                 int spatial, dn_ctx *ctx);

/* ---- winograd.c: F(4x4 or 2x2, 3x3) for 3x3 stride-1 pad-1 inference convolutions ---- */

#define dn_wino_tile DN_CPU(wino_tile)
#define dn_wino_workspace DN_CPU(wino_workspace)
#define dn_wino_weights DN_CPU(wino_weights)
#define dn_wino_weights_size DN_CPU(wino_weights_size)
#define dn_wino_conv3x3 DN_CPU(wino_conv3x3)
#define dn_wino_train_tile DN_CPU(wino_train_tile)
#define dn_wino_weights_backward DN_CPU(wino_weights_backward)
#define dn_wino_images_workspace DN_CPU(wino_images_workspace)
#define dn_wino_conv3x3_images DN_CPU(wino_conv3x3_images)
/* the output tile size m (4 or 2) that makes Winograd F(m x m, 3x3) faster
   than im2col for this layer shape, else 0 */
int dn_wino_tile(int c, int k, int h, int w);
/* floats of scratch dn_wino_conv3x3 takes for `images` images at dn_cpu_threads() threads: what runs
   fastest, or where that is more than `room` floats, room (strips of fewer tile rows), down to the
   least it runs in */
size_t dn_wino_workspace(int c, int k, int h, int w, int m, int images, size_t room);
/* floats of u ((m+2)^2 packed (k, c) matrices) */
size_t dn_wino_weights_size(int k, int c, int m);
/* u ((m+2)^2 planes, each a packed (k, c) matrix: dn_packed_at) from w (k, c, 3, 3); filter f
   scaled by scale[f] (NULL: 1) */
void dn_wino_weights(const float *w, const float *scale, int k, int c, int m, float *u);
/* out (k, h, w) = act(3x3 stride-1 pad-1 convolution of im (c, h, w) with the packed weights
   (dn_packed_at of (k, 9c)), filter f scaled by scale[f] (NULL: 1), + bias) for `images` images
   (im_stride and out_stride floats apart); bias may be NULL, act a per-element kind (not
   dn_act_mixes_channels); ws: ws_n floats, at least the least dn_wino_workspace gives (the
   strips are sized from ws_n; fewer threads run where it was sized for fewer) */
void dn_wino_conv3x3(const float *im, int images, size_t im_stride, int c, int h, int w, int k, int m,
                     const float *packed, const float *scale, const float *bias, dn_act act, float *out,
                     size_t out_stride, float *ws, size_t ws_n);
/* the tile size (4 or 2) of training's forward product and input delta, else 0 */
int dn_wino_train_tile(int c, int k, int h, int w);
/* Training: u ((m+2)^2, packed (c, k)) for the input delta's convolution (w's filters rotated 180 degrees,
   channels transposed): dn_wino_conv3x3_images of an output delta (k planes) with it, c filters,
   gives the input delta */
void dn_wino_weights_backward(const float *w, int k, int c, int m, float *u);
/* floats of scratch dn_wino_conv3x3_images needs for up to `images` images */
size_t dn_wino_images_workspace(int c, int k, int h, int w, int m, int images);
/* out (k, h, w) of each of `images` images (im_stride / out_stride floats apart) = (or, with acc, +=)
   the 3x3 stride-1 pad-1 convolution of its input (c, h, w) with u (dn_wino_weights); no bias or
   activation: many images' tiles share each GEMM */
void dn_wino_conv3x3_images(const float *im, int images, size_t im_stride, int c, int h, int w, int k, int m,
                            const float *u, int acc, float *out, size_t out_stride, float *ws);

/* ---- the kernel tables (cpu/<kind>.c) and the backend (backend.c) -------- */

#define DN_LAYER(kind, caps) extern const dn_kernels DN_CPU(kernels_##kind);
#include "../layers.def"
#undef DN_LAYER
extern const dn_backend DN_CPU(backend);

#endif /* DN_CPU_H */
