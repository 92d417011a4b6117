// The CUDA backend's training kernels: backward passes, batch norm with batch statistics,
// losses and SGD. Each value is computed in the CPU kernels' order where that order is
// fixed (per-channel sums in double, one block per channel), so results agree to rounding.
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
const int kChannelThreads = 1024; // per block of the kernels that reduce a whole channel (or loss)
const float kBnEps = 1e-5f;

unsigned blocks(size_t n)
{
    size_t b = (n + kThreads - 1) / kThreads;
    return (unsigned)(b < 1 ? 1 : b > 65535u * 16 ? 65535u * 16 : b);
}

#define FOR_EACH(i, n) for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); \
                            i += (size_t)gridDim.x * blockDim.x)

// The sums of a and b over the block's kChannelThreads threads, returned to every thread.
__device__ void block_sum2(double *a, double *b)
{
    __shared__ double sa[kChannelThreads], sb[kChannelThreads];
    sa[threadIdx.x] = *a;
    sb[threadIdx.x] = *b;
    __syncthreads();
    for (int half = kChannelThreads / 2; half > 0; half /= 2) {
        if ((int)threadIdx.x < half) {
            sa[threadIdx.x] += sa[threadIdx.x + half];
            sb[threadIdx.x] += sb[threadIdx.x + half];
        }
        __syncthreads();
    }
    *a = sa[0];
    *b = sb[0];
    __syncthreads(); // the shared arrays may be reused by the next call
}

__device__ float logistic(float x) { return 1.f / (1.f + expf(-x)); }

__device__ float softplus(float x)
{
    if (x > 20.f) return x;
    if (x < -20.f) return expf(x);
    return log1pf(expf(x));
}

// f'(.) of the element-wise activations from the output y and, where needed, the input x (spec §3.4).
__device__ float act_grad(float x, float y, int a)
{
    switch (a) {
    case DN_ACT_LOGISTIC: return y * (1 - y);
    case DN_ACT_LOGGY: {
        const float u = (y + 1) / 2;
        return 2 * u * (1 - u);
    }
    case DN_ACT_RELU: return y > 0;
    case DN_ACT_RELU6: return y > 0 && y < 6;
    case DN_ACT_LEAKY:
    case DN_ACT_REVLEAKY: return y > 0 ? 1.f : .1f;
    case DN_ACT_RELIE: return y > 0 ? 1.f : .01f;
    case DN_ACT_RAMP: return (y > 0) + .1f;
    case DN_ACT_TANH: return 1 - y * y;
    case DN_ACT_ELU: return (y >= 0) + (y < 0) * (y + 1);
    case DN_ACT_SELU: return (y >= 0) * 1.0507f + (y < 0) * (y + 1.0507f * 1.6732f);
    case DN_ACT_GELU: {
        const float x3 = x * x * x, t = tanhf(.035677f * x3 + .797885f * x);
        return .5f * (1 + t) + .5f * x * (1 - t * t) * (.797885f + 3 * .035677f * x * x);
    }
    case DN_ACT_PLSE: return (y < 0 || y > 1) ? .01f : .125f;
    case DN_ACT_HARDTAN: return y > -1 && y < 1;
    case DN_ACT_LHTAN: return (y > 0 && y < 1) ? 1.f : .001f;
    case DN_ACT_STAIR: return floorf(y) == y ? 0.f : 1.f;
    case DN_ACT_SWISH: {
        const float s = logistic(x);
        return y + s * (1 - y);
    }
    case DN_ACT_MISH: {
        const float sp = softplus(x), t = tanhf(sp);
        return t + x * (1 - t * t) * (1 - expf(-sp));
    }
    case DN_ACT_HARD_MISH: return x > 0 ? 1.f : (x > -2 ? x + 1 : 0.f);
    default: return 1;
    }
}

__global__ void act_grad_kernel(const float *x, const float *y, float *delta, size_t n, int a)
{
    FOR_EACH(i, n) delta[i] *= act_grad(x ? x[i] : 0.f, y[i], a);
}

// The exact Jacobians of the normalize_channels family, per pixel over the channels:
// softmax kinds y_k (d_k - g), normalize_channels (d_k - g) / s where x_k > 0.
__global__ void act_grad_channels_kernel(const float *x, const float *y, float *delta, size_t pixels, int c,
                                         int spatial, int a)
{
    FOR_EACH(bp, pixels) {
        const size_t base = (bp / spatial) * (size_t)c * spatial + bp % spatial;
        float g = 0, s = 1e-4f;
        for (int k = 0; k < c; k++) g += y[base + (size_t)k * spatial] * delta[base + (size_t)k * spatial];
        if (a == DN_ACT_NORM_CHAN)
            for (int k = 0; k < c; k++) s += fmaxf(x[base + (size_t)k * spatial], 0);
        for (int k = 0; k < c; k++) {
            const size_t i = base + (size_t)k * spatial;
            delta[i] = a != DN_ACT_NORM_CHAN ? y[i] * (delta[i] - g) : (x[i] > 0 ? (delta[i] - g) / s : 0.f);
        }
    }
}

// One block per channel f of y (batch, n, spatial).
__global__ void bn_forward_kernel(float *y, float *x_norm, float *batch_mean, float *batch_var, float *mean,
                                  float *var, const float *scales, int batch, int n, int spatial, int training,
                                  float rolling)
{
    const int f = blockIdx.x;
    const size_t count = (size_t)batch * spatial;
#define AT(j) (((size_t)((j) / spatial) * n + f) * spatial + (j) % spatial)
    float m = mean[f], v = var[f];
    if (training) {
        double s = 0, unused = 0;
        for (size_t j = threadIdx.x; j < count; j += blockDim.x) s += y[AT(j)];
        block_sum2(&s, &unused);
        m = (float)(s / count);
        double s2 = 0;
        for (size_t j = threadIdx.x; j < count; j += blockDim.x) {
            const double d = y[AT(j)] - m;
            s2 += d * d;
        }
        block_sum2(&s2, &unused);
        v = (float)(s2 / count);
        if (threadIdx.x == 0) {
            batch_mean[f] = m;
            batch_var[f] = v;
            // the rolling variance is the unbiased one, as cuDNN keeps it
            const float unbiased = count > 1 ? (float)(s2 / (count - 1)) : v;
            mean[f] = (1 - rolling) * mean[f] + rolling * m;
            var[f] = (1 - rolling) * var[f] + rolling * unbiased;
        }
    }
    const float inv = (float)(1.0 / sqrt((double)v + kBnEps)), g = scales[f];
    for (size_t j = threadIdx.x; j < count; j += blockDim.x) {
        const size_t i = AT(j);
        const float xn = (y[i] - m) * inv;
        if (training) x_norm[i] = xn;
        y[i] = xn * g;
    }
}

// One block per channel: the bias and scale gradients, then batch norm's input gradient.
__global__ void bias_bn_backward_kernel(float *delta, const float *x_norm, const float *scales,
                                        const float *batch_var, float *bias_updates, float *scale_updates, int batch,
                                        int n, int spatial)
{
    const int f = blockIdx.x;
    const size_t count = (size_t)batch * spatial;
    double sum_d = 0, dg = 0;
    for (size_t j = threadIdx.x; j < count; j += blockDim.x) {
        const size_t i = AT(j);
        sum_d += delta[i];
        if (x_norm) dg += (double)delta[i] * x_norm[i];
    }
    block_sum2(&sum_d, &dg);
    if (threadIdx.x == 0) {
        if (bias_updates) bias_updates[f] += (float)sum_d;
        if (x_norm) scale_updates[f] += (float)dg;
    }
    if (!x_norm) return;
    // the exact gradient of the normalisation, batch statistics biased (cuDNN)
    const float g = scales[f], inv = (float)(1.0 / sqrt((double)batch_var[f] + kBnEps));
    const float md = (float)(sum_d / count), mdx = (float)(dg / count);
    for (size_t j = threadIdx.x; j < count; j += blockDim.x) {
        const size_t i = AT(j);
        delta[i] = g * inv * (delta[i] - md - x_norm[i] * mdx);
    }
#undef AT
}

// Each image value gathers the column entries that read it (no atomics).
__global__ void col2im_add_kernel(const float *col, dn_cuda_conv g, float *im)
{
    const int k2 = g.size * g.size, spatial = g.out_h * g.out_w, pad = g.pad * g.dilation;
    FOR_EACH(i, (size_t)g.c * g.h * g.w) {
        const int ci = (int)(i / ((size_t)g.h * g.w)), y = (int)(i / g.w % g.h), x = (int)(i % g.w);
        float sum = 0;
        for (int ky = 0; ky < g.size; ky++) {
            const int ty = y + pad - ky * g.dilation;
            if (ty < 0 || ty % g.stride_y) continue;
            const int oy = ty / g.stride_y;
            if (oy >= g.out_h) continue;
            for (int kx = 0; kx < g.size; kx++) {
                const int tx = x + pad - kx * g.dilation;
                if (tx < 0 || tx % g.stride_x) continue;
                const int ox = tx / g.stride_x;
                if (ox >= g.out_w) continue;
                sum += col[((size_t)ci * k2 + ky * g.size + kx) * spatial + (size_t)oy * g.out_w + ox];
            }
        }
        im[i] += sum;
    }
}

__global__ void sgd_kernel(float *w, float *u, size_t n, float step, float decay, float momentum)
{
    FOR_EACH(i, n) {
        u[i] -= decay * w[i];
        w[i] += step * u[i];
        u[i] *= momentum;
    }
}

// The window's argmax found again (the forward's scan order, first of equal values) and its delta
// added there; windows overlap when stride < size, hence the atomics.
__global__ void maxpool_backward_kernel(const float *in, const float *delta, float *in_delta, size_t n, int h, int w,
                                        int out_h, int out_w, int size, int sx, int sy, int padding)
{
    FOR_EACH(o, n) {
        const size_t plane = o / ((size_t)out_h * out_w);
        const int i = (int)(o / out_w % out_h), j = (int)(o % out_w);
        const int y0 = max(i * sy - padding / 2, 0), y1 = min(i * sy - padding / 2 + size, h);
        const int x0 = max(j * sx - padding / 2, 0), x1 = min(j * sx - padding / 2 + size, w);
        const float *p = in + plane * h * w;
        float best = -FLT_MAX;
        int arg = -1;
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++)
                if (p[y * w + x] > best) {
                    best = p[y * w + x];
                    arg = y * w + x;
                }
        if (arg >= 0) atomicAdd(&in_delta[plane * h * w + arg], delta[o]);
    }
}

__global__ void maxpool_depth_backward_kernel(const float *in, const float *delta, float *in_delta, size_t n, int c,
                                              int spatial, int out_c)
{
    FOR_EACH(o, n) {
        const int b = (int)(o / ((size_t)out_c * spatial)), g = (int)(o / spatial % out_c), i = (int)(o % spatial);
        float best = -FLT_MAX;
        size_t arg = SIZE_MAX;
        for (int k = g; k < c; k += out_c) {
            const size_t idx = ((size_t)b * c + k) * spatial + i;
            if (in[idx] > best) {
                best = in[idx];
                arg = idx;
            }
        }
        if (arg != SIZE_MAX) in_delta[arg] += delta[o]; // input channel k belongs to output g alone
    }
}

__global__ void avgpool_backward_kernel(const float *delta, float *in_delta, size_t n, int spatial)
{
    FOR_EACH(i, n) in_delta[i] += delta[i / spatial] / spatial;
}

// Up: each input pixel gathers its k x k block of deltas; down: each pixel of a block gets the block's.
__global__ void upsample_backward_kernel(const float *delta, float *in_delta, size_t n, int h, int w, int k, int down,
                                         float scale)
{
    const int oh = down ? h / k : h * k, ow = down ? w / k : w * k;
    FOR_EACH(i, n) {
        const size_t plane = i / ((size_t)h * w);
        const int y = (int)(i / w % h), x = (int)(i % w);
        const float *d = delta + plane * oh * ow;
        if (!down) {
            float sum = 0;
            for (int dy = 0; dy < k; dy++)
                for (int dx = 0; dx < k; dx++) sum += d[(size_t)(y * k + dy) * ow + x * k + dx];
            in_delta[i] += scale * sum;
        } else if (y / k < oh && x / k < ow) {
            in_delta[i] += scale * d[(size_t)(y / k) * ow + x / k];
        }
    }
}

// One block: delta = t - y, *sum = the cross-entropy over the targets that are not 0.
__global__ void softmax_loss_kernel(const float *y, const float *t, float *delta, size_t n, double *sum)
{
    double s = 0, unused = 0;
    for (size_t i = threadIdx.x; i < n; i += blockDim.x) {
        delta[i] = t[i] - y[i];
        if (t[i] != 0) s += -log((double)y[i]);
    }
    block_sum2(&s, &unused);
    if (threadIdx.x == 0) *sum = s;
}

// One block: [cost]'s delta and error sum (sse, masked, smooth; spec §4.2).
__global__ void cost_loss_kernel(const float *x, const float *t, float *delta, size_t n, int type, double *sum)
{
    double s = 0, unused = 0;
    for (size_t i = threadIdx.x; i < n; i += blockDim.x) {
        const float ti = t[i];
        const float xi = type == 1 && ti == -1234 ? ti : x[i];
        const float d = ti - xi;
        float err = d * d, dl = d;
        if (type == 2 && fabsf(d) >= 1) {
            err = 2 * fabsf(d) - 1;
            dl = d > 0 ? 1.f : -1.f;
        }
        delta[i] = dl;
        s += err;
    }
    block_sum2(&s, &unused);
    if (threadIdx.x == 0) *sum = s;
}

__global__ void dropout_kernel(float *x, const float *draws, size_t n, float p, float scale)
{
    FOR_EACH(i, n) x[i] = draws[i] < p ? 0.f : x[i] * scale;
}

} // namespace

extern "C" {

cudaError_t dn_cuda_act_grad(const float *x, const float *y, float *delta, int batch, int c, int spatial, int act,
                             cudaStream_t s)
{
    if (act == DN_ACT_LINEAR) return cudaSuccess;
    if (act == DN_ACT_NORM_CHAN || act == DN_ACT_NORM_CHAN_SOFTMAX || act == DN_ACT_NORM_CHAN_SOFTMAX_MAXVAL) {
        const size_t pixels = (size_t)batch * spatial;
        act_grad_channels_kernel<<<blocks(pixels), kThreads, 0, s>>>(x, y, delta, pixels, c, spatial, act);
    } else {
        const size_t n = (size_t)batch * c * spatial;
        act_grad_kernel<<<blocks(n), kThreads, 0, s>>>(x, y, delta, n, act);
    }
    return cudaGetLastError();
}

cudaError_t dn_cuda_bn_forward(float *y, float *x_norm, float *batch_mean, float *batch_var, float *mean, float *var,
                               const float *scales, int batch, int n, int spatial, int training, float rolling,
                               cudaStream_t s)
{
    bn_forward_kernel<<<n, kChannelThreads, 0, s>>>(y, x_norm, batch_mean, batch_var, mean, var, scales, batch, n,
                                                    spatial, training, rolling);
    return cudaGetLastError();
}

cudaError_t dn_cuda_bias_bn_backward(float *delta, const float *x_norm, const float *scales, const float *batch_var,
                                     float *bias_updates, float *scale_updates, int batch, int n, int spatial,
                                     cudaStream_t s)
{
    bias_bn_backward_kernel<<<n, kChannelThreads, 0, s>>>(delta, x_norm, scales, batch_var, bias_updates, scale_updates,
                                                   batch, n, spatial);
    return cudaGetLastError();
}

cudaError_t dn_cuda_col2im_add(const float *col, dn_cuda_conv g, float *im, cudaStream_t s)
{
    const size_t n = (size_t)g.c * g.h * g.w;
    col2im_add_kernel<<<blocks(n), kThreads, 0, s>>>(col, g, im);
    return cudaGetLastError();
}

cudaError_t dn_cuda_sgd(float *w, float *u, size_t n, float step, float decay, float momentum, cudaStream_t s)
{
    if (n) sgd_kernel<<<blocks(n), kThreads, 0, s>>>(w, u, n, step, decay, momentum);
    return cudaGetLastError();
}

cudaError_t dn_cuda_maxpool_backward(const float *in, const float *delta, float *in_delta, int planes, int h, int w,
                                     int out_h, int out_w, int size, int stride_x, int stride_y, int padding,
                                     cudaStream_t s)
{
    const size_t n = (size_t)planes * out_h * out_w;
    maxpool_backward_kernel<<<blocks(n), kThreads, 0, s>>>(in, delta, in_delta, n, h, w, out_h, out_w, size,
                                                           stride_x, stride_y, padding);
    return cudaGetLastError();
}

cudaError_t dn_cuda_maxpool_depth_backward(const float *in, const float *delta, float *in_delta, int batch, int c,
                                           int spatial, int out_c, cudaStream_t s)
{
    const size_t n = (size_t)batch * out_c * spatial;
    maxpool_depth_backward_kernel<<<blocks(n), kThreads, 0, s>>>(in, delta, in_delta, n, c, spatial, out_c);
    return cudaGetLastError();
}

cudaError_t dn_cuda_avgpool_backward(const float *delta, float *in_delta, int planes, int spatial, cudaStream_t s)
{
    const size_t n = (size_t)planes * spatial;
    avgpool_backward_kernel<<<blocks(n), kThreads, 0, s>>>(delta, in_delta, n, spatial);
    return cudaGetLastError();
}

cudaError_t dn_cuda_upsample_backward(const float *delta, float *in_delta, int planes, int h, int w, int k, int down,
                                      float scale, cudaStream_t s)
{
    const size_t n = (size_t)planes * h * w;
    upsample_backward_kernel<<<blocks(n), kThreads, 0, s>>>(delta, in_delta, n, h, w, k, down, scale);
    return cudaGetLastError();
}

cudaError_t dn_cuda_softmax_loss(const float *y, const float *t, float *delta, size_t n, double *sum, cudaStream_t s)
{
    softmax_loss_kernel<<<1, kChannelThreads, 0, s>>>(y, t, delta, n, sum);
    return cudaGetLastError();
}

cudaError_t dn_cuda_cost_loss(const float *x, const float *t, float *delta, size_t n, int type, double *sum,
                              cudaStream_t s)
{
    cost_loss_kernel<<<1, kChannelThreads, 0, s>>>(x, t, delta, n, type, sum);
    return cudaGetLastError();
}

cudaError_t dn_cuda_dropout(float *x, const float *draws, size_t n, float p, float scale, cudaStream_t s)
{
    if (n) dropout_kernel<<<blocks(n), kThreads, 0, s>>>(x, draws, n, p, scale);
    return cudaGetLastError();
}

} // extern "C"
