// The CUDA backend's device kernels: one thread per output value (grid-stride
// loops), each value computed in the CPU kernels' order so results agree to
// rounding. The layer logic lives in the C files beside this one.
#include <cfloat>
#include <stdint.h> // dn.h's headers, included outside extern "C"
#include <stdio.h>
#include <stdlib.h>

extern "C" {
#include "../dn.h"
}
#include "kernels.h"

namespace {

const int kThreads = 256;

// Blocks for n threads; the grid-stride loops cover any n.
unsigned blocks(size_t n)
{
    size_t b = (n + kThreads - 1) / kThreads;
    return (unsigned)(b < 1 ? 1 : b > 65535u * 16 ? 65535u * 16 : b);
}

#define FOR_EACH(i, n) for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); \
                            i += (size_t)gridDim.x * blockDim.x)

__device__ float softplus(float x)
{
    if (x > 20.f) return x;
    if (x < -20.f) return expf(x);
    return log1pf(expf(x));
}

// darknet's activations (spec §3.4), the element-wise ones.
__device__ float activate(float x, int a)
{
    switch (a) {
    case DN_ACT_LOGISTIC: return 1.f / (1.f + expf(-x));
    case DN_ACT_LOGGY: return 2.f / (1.f + expf(-x)) - 1.f;
    case DN_ACT_RELU: return x > 0 ? x : 0;
    case DN_ACT_RELU6: return x < 0 ? 0 : (x > 6 ? 6 : x);
    case DN_ACT_LEAKY:
    case DN_ACT_REVLEAKY: return x > 0 ? x : .1f * x;
    case DN_ACT_RELIE: return x > 0 ? x : .01f * x;
    case DN_ACT_RAMP: return x * (x > 0) + .1f * x;
    case DN_ACT_TANH: return 2.f / (1.f + expf(-2.f * x)) - 1.f;
    case DN_ACT_ELU: return x >= 0 ? x : expf(x) - 1.f;
    case DN_ACT_SELU: return x >= 0 ? 1.0507f * x : 1.0507f * 1.6732f * (expf(x) - 1.f);
    case DN_ACT_GELU: return .5f * x * (1.f + tanhf(.797885f * x + .035677f * x * x * x));
    case DN_ACT_PLSE: return x < -4 ? .01f * (x + 4) : x > 4 ? .01f * (x - 4) + 1 : .125f * x + .5f;
    case DN_ACT_HARDTAN: return x < -1 ? -1 : (x > 1 ? 1 : x);
    case DN_ACT_LHTAN: return x < 0 ? .001f * x : x > 1 ? .001f * (x - 1) + 1 : x;
    case DN_ACT_STAIR: {
        int n = (int)floorf(x);
        return n % 2 == 0 ? floorf(x / 2) : (x - n) + floorf(x / 2);
    }
    case DN_ACT_SWISH: return x / (1.f + expf(-x));
    case DN_ACT_MISH: return x * tanhf(softplus(x));
    case DN_ACT_HARD_MISH: return x > 0 ? x : (x > -2 ? x * x / 2 + x : 0);
    default: return x;
    }
}

__device__ bool is_channel_norm(int a)
{
    return a == DN_ACT_NORM_CHAN || a == DN_ACT_NORM_CHAN_SOFTMAX || a == DN_ACT_NORM_CHAN_SOFTMAX_MAXVAL;
}

__global__ void bias_act_kernel(float *x, const float *bias, size_t n, int c, int spatial, int a)
{
    FOR_EACH(i, n) {
        const float v = x[i] + (bias ? bias[(i / spatial) % c] : 0.f);
        x[i] = is_channel_norm(a) ? v : activate(v, a);
    }
}

// normalize_channels* per pixel over the channels (spec §3.4).
__global__ void norm_channels_kernel(float *x, size_t pixels, int c, int spatial, int a)
{
    FOR_EACH(bp, pixels) {
        float *px = x + (bp / spatial) * (size_t)c * spatial + bp % spatial;
        float m = 0, sum = 1e-4f;
        if (a == DN_ACT_NORM_CHAN_SOFTMAX_MAXVAL) {
            m = px[0];
            for (int k = 1; k < c; k++) m = fmaxf(m, px[(size_t)k * spatial]);
        }
        for (int k = 0; k < c; k++) {
            const float v = px[(size_t)k * spatial];
            sum += a == DN_ACT_NORM_CHAN ? fmaxf(v, 0) : expf(v - m);
        }
        for (int k = 0; k < c; k++) {
            float *v = &px[(size_t)k * spatial];
            *v = a == DN_ACT_NORM_CHAN ? (*v > 0 ? *v / sum : 0) : expf(*v - m) / sum;
        }
    }
}

__global__ void im2col_kernel(const float *im, dn_cuda_conv g, float *col)
{
    const int k2 = g.size * g.size, spatial = g.out_h * g.out_w, pad = g.pad * g.dilation;
    FOR_EACH(i, (size_t)g.c * k2 * spatial) {
        const int row = (int)(i / spatial), pix = (int)(i % spatial);
        const int ci = row / k2, ky = (row % k2) / g.size, kx = row % g.size;
        const int iy = (pix / g.out_w) * g.stride_y - pad + ky * g.dilation;
        const int ix = (pix % g.out_w) * g.stride_x - pad + kx * g.dilation;
        col[i] = iy < 0 || iy >= g.h || ix < 0 || ix >= g.w ? 0.f : im[((size_t)ci * g.h + iy) * g.w + ix];
    }
}

// The in-image part [lo, hi) of window `index` (as dn_pool_span).
__device__ void span(int index, int stride, int padding, int size, int limit, int *lo, int *hi)
{
    const int start = index * stride - padding / 2, end = start + size;
    *lo = start < 0 ? 0 : start;
    *hi = end > limit ? limit : end;
}

__global__ void maxpool_kernel(const float *in, float *out, size_t n, int h, int w, int out_h, int out_w, int size,
                               int sx, int sy, int padding)
{
    FOR_EACH(o, n) {
        const size_t plane = o / ((size_t)out_h * out_w);
        const int i = (int)(o / out_w % out_h), j = (int)(o % out_w);
        int y0, y1, x0, x1;
        span(i, sy, padding, size, h, &y0, &y1);
        span(j, sx, padding, size, w, &x0, &x1);
        const float *p = in + plane * h * w;
        float best = -FLT_MAX;
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++) best = fmaxf(best, p[y * w + x]);
        out[o] = best;
    }
}

__global__ void maxpool_depth_kernel(const float *in, float *out, size_t n, int c, int spatial, int out_c)
{
    FOR_EACH(o, n) {
        const int b = (int)(o / ((size_t)out_c * spatial)), g = (int)(o / spatial % out_c), i = (int)(o % spatial);
        float best = -FLT_MAX;
        for (int k = g; k < c; k += out_c) best = fmaxf(best, in[((size_t)b * c + k) * spatial + i]);
        out[o] = best;
    }
}

__global__ void avgpool_kernel(const float *in, float *out, size_t planes, int spatial)
{
    FOR_EACH(p, planes) {
        float sum = 0;
        for (int i = 0; i < spatial; i++) sum += in[p * spatial + i];
        out[p] = sum / spatial;
    }
}

__global__ void add_prefix_kernel(const float *src, int src_n, float *out, int out_n, int m, size_t n, float alpha)
{
    FOR_EACH(j, n) {
        const size_t b = j / m, i = j % m;
        out[b * out_n + i] += alpha * src[b * src_n + i];
    }
}

__global__ void upsample_kernel(const float *in, float *out, size_t n, int h, int w, int k, int down, float scale)
{
    const int oh = down ? h / k : h * k, ow = down ? w / k : w * k;
    FOR_EACH(o, n) {
        const size_t plane = o / ((size_t)oh * ow);
        const int y = (int)(o / ow % oh), x = (int)(o % ow);
        const float *src = in + plane * h * w;
        if (!down) {
            out[o] = scale * src[(size_t)(y / k) * w + x / k];
        } else {
            float sum = 0;
            for (int dy = 0; dy < k; dy++)
                for (int dx = 0; dx < k; dx++) sum += src[(size_t)(y * k + dy) * w + x * k + dx];
            out[o] = scale * sum;
        }
    }
}

__global__ void softmax_kernel(const float *in, float *out, size_t rows, int n, float t)
{
    FOR_EACH(r, rows) {
        const float *x = in + r * n;
        float *y = out + r * n;
        float m = x[0], sum = 0;
        for (int i = 1; i < n; i++) m = fmaxf(m, x[i]);
        for (int i = 0; i < n; i++) {
            y[i] = (float)exp((double)x[i] / t - (double)m / t);
            sum += y[i];
        }
        for (int i = 0; i < n; i++) y[i] /= sum;
    }
}

__global__ void yolo_kernel(const float *in, float *out, size_t n, int entries, int spatial, int new_coords,
                            float scale)
{
    const float shift = (scale - 1) / 2;
    FOR_EACH(o, n) {
        const int e = (int)(o / spatial % entries);
        float v = in[o];
        if (!new_coords && e != 2 && e != 3) v = 1.f / (1.f + expf(-v));
        if (e < 2 && scale != 1) v = scale * v - shift;
        out[o] = v;
    }
}

} // namespace

extern "C" {

cudaError_t dn_cuda_im2col(const float *im, dn_cuda_conv g, float *col, cudaStream_t s)
{
    const size_t n = (size_t)g.c * g.size * g.size * g.out_h * g.out_w;
    im2col_kernel<<<blocks(n), kThreads, 0, s>>>(im, g, col);
    return cudaGetLastError();
}

cudaError_t dn_cuda_bias_act(float *x, const float *bias, int batch, int c, int spatial, int act, cudaStream_t s)
{
    const size_t n = (size_t)batch * c * spatial;
    if (bias || act != DN_ACT_LINEAR) bias_act_kernel<<<blocks(n), kThreads, 0, s>>>(x, bias, n, c, spatial, act);
    if (act == DN_ACT_NORM_CHAN || act == DN_ACT_NORM_CHAN_SOFTMAX || act == DN_ACT_NORM_CHAN_SOFTMAX_MAXVAL)
        norm_channels_kernel<<<blocks((size_t)batch * spatial), kThreads, 0, s>>>(x, (size_t)batch * spatial, c,
                                                                                   spatial, act);
    return cudaGetLastError();
}

cudaError_t dn_cuda_maxpool(const float *in, float *out, int planes, int h, int w, int out_h, int out_w, int size,
                            int stride_x, int stride_y, int padding, cudaStream_t s)
{
    const size_t n = (size_t)planes * out_h * out_w;
    maxpool_kernel<<<blocks(n), kThreads, 0, s>>>(in, out, n, h, w, out_h, out_w, size, stride_x, stride_y,
                                                  padding);
    return cudaGetLastError();
}

cudaError_t dn_cuda_maxpool_depth(const float *in, float *out, int batch, int c, int spatial, int out_c,
                                  cudaStream_t s)
{
    const size_t n = (size_t)batch * out_c * spatial;
    maxpool_depth_kernel<<<blocks(n), kThreads, 0, s>>>(in, out, n, c, spatial, out_c);
    return cudaGetLastError();
}

cudaError_t dn_cuda_avgpool(const float *in, float *out, int planes, int spatial, cudaStream_t s)
{
    avgpool_kernel<<<blocks(planes), kThreads, 0, s>>>(in, out, planes, spatial);
    return cudaGetLastError();
}

cudaError_t dn_cuda_add_prefix(const float *src, int src_n, float *out, int out_n, int m, int batch, float alpha,
                               cudaStream_t s)
{
    const size_t n = (size_t)batch * m;
    if (n) add_prefix_kernel<<<blocks(n), kThreads, 0, s>>>(src, src_n, out, out_n, m, n, alpha);
    return cudaGetLastError();
}

cudaError_t dn_cuda_upsample(const float *in, float *out, int planes, int h, int w, int k, int down, float scale,
                             cudaStream_t s)
{
    const size_t n = (size_t)planes * (down ? (h / k) * (w / k) : (size_t)h * k * w * k);
    upsample_kernel<<<blocks(n), kThreads, 0, s>>>(in, out, n, h, w, k, down, scale);
    return cudaGetLastError();
}

cudaError_t dn_cuda_softmax(const float *in, float *out, int rows, int n, float t, cudaStream_t s)
{
    softmax_kernel<<<blocks(rows), kThreads, 0, s>>>(in, out, rows, n, t);
    return cudaGetLastError();
}

cudaError_t dn_cuda_yolo(const float *in, float *out, int planes, int entries, int spatial, int new_coords,
                         float scale_x_y, cudaStream_t s)
{
    const size_t n = (size_t)planes * spatial;
    yolo_kernel<<<blocks(n), kThreads, 0, s>>>(in, out, n, entries, spatial, new_coords, scale_x_y);
    return cudaGetLastError();
}

} // extern "C"
