/* Activation loops (spec §3.4) on the CPU: in place, fused with the bias, and their gradients. */
#include <math.h>
#include <string.h>

#include "cpu.h"

static float logistic(float x) { return 1.f / (1.f + expf(-x)); }

/* a * b + c, fused where the instruction set has FMA (each level computes it its own way,
   within an ulp) */
#ifdef __FMA__
#define MADD(a, b, c) fmaf(a, b, c)
#else
#define MADD(a, b, c) ((a) * (b) + (c))
#endif

/* exp(x) within ~2 ulp for x in [-87.3, 88.3] (the callers clamp: one clamp per kernel
   vectorises best), branch-free so loops vectorise: x = n ln2 + r with |r| <= ln2/2,
   exp(r) by a degree-6 polynomial (Cephes coefficients), 2^n put into the exponent bits.
   n is rounded by adding 1.5 * 2^23 (+ the exponent bias 127): the low bits of that sum
   are then 2^n's exponent field. */
static inline float exp_in_range(float x)
{
    const float shift = 12582912.f + 127.f;
    const float u = MADD(x, 1.44269504f, shift), n = u - shift;
    const float r = MADD(n, 2.12194440e-4f, MADD(n, -.693359375f, x));
    float p = 1.9875691500e-4f;
    p = MADD(p, r, 1.3981999507e-3f);
    p = MADD(p, r, 8.3334519073e-3f);
    p = MADD(p, r, 4.1665795894e-2f);
    p = MADD(p, r, 1.6666665459e-1f);
    p = MADD(p, r, 5.0000001201e-1f);
    p = MADD(p, r * r, r) + 1.f;
    int32_t bits;
    memcpy(&bits, &u, sizeof bits);
    bits <<= 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* Element-wise kernels for the hot activations: one pass, vectorised. */
static inline float leaky_fast(float x) { return x > 0 ? x : .1f * x; }
static inline float clamp(float x, float lo, float hi) { return x < lo ? lo : (x > hi ? hi : x); }
static inline float logistic_fast(float x) { return 1.f / (1.f + exp_in_range(clamp(-x, -87.3f, 88.3f))); }
static inline float swish_fast(float x) { return x / (1.f + exp_in_range(clamp(-x, -87.3f, 88.3f))); }
static inline float mish_fast(float x)
{
    /* x tanh(ln(1 + e^x)) = x n / (n + 2) with n = e^x (e^x + 2); from x = 20 on the
       ratio rounds to 1 (mish(x) = x there, as upstream's) */
    const float e = exp_in_range(clamp(x, -87.3f, 20.f)), n = MADD(e, e, e + e);
    return x * (n / (n + 2.f));
}

static float softplus(float x)
{
    if (x > 20.f) return x;
    if (x < -20.f) return expf(x);
    return log1pf(expf(x));
}

static float act_one(float x, dn_act a)
{
    switch (a) {
    case DN_ACT_LOGISTIC: return logistic(x);
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
    case DN_ACT_PLSE:
        if (x < -4) return .01f * (x + 4);
        if (x > 4) return .01f * (x - 4) + 1;
        return .125f * x + .5f;
    case DN_ACT_HARDTAN: return x < -1 ? -1 : (x > 1 ? 1 : x);
    case DN_ACT_LHTAN:
        if (x < 0) return .001f * x;
        if (x > 1) return .001f * (x - 1) + 1;
        return x;
    case DN_ACT_STAIR: {
        int n = (int)floorf(x);
        if (n % 2 == 0) return floorf(x / 2);
        return (x - n) + floorf(x / 2);
    }
    case DN_ACT_SWISH: return x * logistic(x);
    case DN_ACT_MISH: return x * tanhf(softplus(x));
    case DN_ACT_HARD_MISH: return x > 0 ? x : (x > -2 ? x * x / 2 + x : 0);
    default: return x; /* linear; channel-normalising kinds are handled per pixel */
    }
}

/* Derivative from the output y (and the input x for swish/mish/hard_mish). */
static float grad_one(float x, float y, dn_act a)
{
    switch (a) {
    case DN_ACT_LOGISTIC: return y * (1 - y);
    case DN_ACT_LOGGY: {
        float u = (y + 1) / 2;
        return 2 * u * (1 - u);
    }
    case DN_ACT_RELU: return y > 0;
    case DN_ACT_RELU6: return y > 0 && y < 6;
    case DN_ACT_LEAKY:
    case DN_ACT_REVLEAKY: return y > 0 ? 1 : .1f;
    case DN_ACT_RELIE: return y > 0 ? 1 : .01f;
    case DN_ACT_RAMP: return (y > 0) + .1f;
    case DN_ACT_TANH: return 1 - y * y;
    case DN_ACT_ELU: return (y >= 0) + (y < 0) * (y + 1);
    case DN_ACT_SELU: return (y >= 0) * 1.0507f + (y < 0) * (y + 1.0507f * 1.6732f);
    case DN_ACT_GELU: {
        /* at the input: upstream evaluates it at the output (spec §3.4), see README */
        float x3 = x * x * x, t = tanhf(.035677f * x3 + .797885f * x);
        return .5f * (1 + t) + .5f * x * (1 - t * t) * (.797885f + 3 * .035677f * x * x);
    }
    case DN_ACT_PLSE: return (y < 0 || y > 1) ? .01f : .125f;
    case DN_ACT_HARDTAN: return y > -1 && y < 1;
    case DN_ACT_LHTAN: return (y > 0 && y < 1) ? 1 : .001f;
    case DN_ACT_STAIR: return floorf(y) == y ? 0 : 1;
    case DN_ACT_SWISH: {
        float s = logistic(x);
        return y + s * (1 - y);
    }
    case DN_ACT_MISH: {
        float sp = softplus(x), t = tanhf(sp);
        return t + x * (1 - t * t) * (1 - expf(-sp));
    }
    case DN_ACT_HARD_MISH: return x > 0 ? 1 : (x > -2 ? x + 1 : 0);
    default: return 1;
    }
}

int dn_act_mixes_channels(dn_act a)
{
    return a == DN_ACT_NORM_CHAN || a == DN_ACT_NORM_CHAN_SOFTMAX || a == DN_ACT_NORM_CHAN_SOFTMAX_MAXVAL;
}

/* Per pixel over channels (spec §3.4, normalize_channels family). */
static void normalize_channels(float *x, int batch, int c, int spatial, dn_act a)
{
    #pragma omp parallel for num_threads(dn_cpu_threads())
    for (long bp = 0; bp < (long)batch * spatial; bp++) {
        float *px = x + (bp / spatial) * (long)c * spatial + bp % spatial;
        float m = 0, sum = 1e-4f;
        if (a == DN_ACT_NORM_CHAN_SOFTMAX_MAXVAL) {
            m = px[0];
            for (int k = 1; k < c; k++) m = fmaxf(m, px[(long)k * spatial]);
        }
        for (int k = 0; k < c; k++) {
            float v = px[(long)k * spatial];
            sum += a == DN_ACT_NORM_CHAN ? fmaxf(v, 0) : expf(v - m);
        }
        for (int k = 0; k < c; k++) {
            float *v = &px[(long)k * spatial];
            *v = a == DN_ACT_NORM_CHAN ? (*v > 0 ? *v / sum : 0) : expf(*v - m) / sum;
        }
    }
}

/* x = EXPR(v) with v = x * scale + bias over the span (x * 1 + bias is x + bias
   exactly, fused or not); the hot kinds' EXPR vectorises. */
#define ACTIVATE_SPAN(EXPR)                                                      \
    _Pragma("omp simd") for (int i = 0; i < n; i++)                              \
    {                                                                            \
        const float v = x[i] * scale + bias;                                     \
        x[i] = EXPR;                                                             \
    }

void dn_activate_span(float *x, int n, float bias, dn_act a) { dn_activate_affine_span(x, n, 1.f, bias, a); }

void dn_activate_affine_span(float *x, int n, float scale, float bias, dn_act a)
{
    switch (a) {
    case DN_ACT_LINEAR: ACTIVATE_SPAN(v) break;
    case DN_ACT_LEAKY: ACTIVATE_SPAN(leaky_fast(v)) break;
    case DN_ACT_LOGISTIC: ACTIVATE_SPAN(logistic_fast(v)) break;
    case DN_ACT_SWISH: ACTIVATE_SPAN(swish_fast(v)) break;
    case DN_ACT_MISH: ACTIVATE_SPAN(mish_fast(v)) break;
    default: ACTIVATE_SPAN(act_one(v, a)) break;
    }
}

void dn_activate_bias(float *x, const float *bias, int batch, int c, int spatial, dn_act a)
{
    dn_activate_affine(x, NULL, bias, batch, c, spatial, a);
}

void dn_activate_affine(float *x, const float *scale, const float *bias, int batch, int c, int spatial, dn_act a)
{
    const long planes = (long)batch * c;
    const int mixes = dn_act_mixes_channels(a);
    if (mixes && !scale && !bias) {
        normalize_channels(x, batch, c, spatial, a);
        return;
    }
    #pragma omp parallel for num_threads(dn_cpu_threads())
    for (long pl = 0; pl < planes; pl++)
        dn_activate_affine_span(x + pl * spatial, spatial, scale ? scale[pl % c] : 1.f, bias ? bias[pl % c] : 0.f,
                                mixes ? DN_ACT_LINEAR : a);
    if (mixes) normalize_channels(x, batch, c, spatial, a);
}

void dn_activate(float *x, int batch, int c, int spatial, dn_act a)
{
    if (a != DN_ACT_LINEAR) dn_activate_bias(x, NULL, batch, c, spatial, a);
}

void dn_activate_grad(const float *x, const float *y, int batch, int c, int spatial, dn_act a, float *delta)
{
    if (a == DN_ACT_LINEAR) return;
    if (dn_act_mixes_channels(a)) {
        /* exact Jacobians (upstream's delta*sum(y*delta) is not a gradient, see README):
           softmax kinds y_k(d_k - g); normalize_channels (d_k - g)/s where x_k > 0 */
        #pragma omp parallel for num_threads(dn_cpu_threads())
        for (long bp = 0; bp < (long)batch * spatial; bp++) {
            long base = (bp / spatial) * (long)c * spatial + bp % spatial;
            float g = 0, s = 1e-4f;
            for (int k = 0; k < c; k++) g += y[base + (long)k * spatial] * delta[base + (long)k * spatial];
            if (a == DN_ACT_NORM_CHAN)
                for (int k = 0; k < c; k++) s += fmaxf(x[base + (long)k * spatial], 0);
            for (int k = 0; k < c; k++) {
                long i = base + (long)k * spatial;
                if (a != DN_ACT_NORM_CHAN) delta[i] = y[i] * (delta[i] - g);
                else delta[i] = x[i] > 0 ? (delta[i] - g) / s : 0;
            }
        }
        return;
    }
    const long n = (long)batch * c * spatial, chunk = 8192;
    #pragma omp parallel for if (n > chunk) num_threads(dn_cpu_threads())
    for (long i = 0; i < n; i += chunk)
        dn_activate_grad_span(x ? x + i : NULL, y + i, n - i < chunk ? n - i : chunk, a, delta + i);
}

void dn_activate_grad_span(const float *x, const float *y, long n, dn_act a, float *delta)
{
    if (a == DN_ACT_LINEAR) return;
    if (a == DN_ACT_LEAKY) { /* the common case, vectorised */
        #pragma omp simd
        for (long i = 0; i < n; i++) delta[i] *= y[i] > 0 ? 1.f : .1f;
        return;
    }
    for (long i = 0; i < n; i++) delta[i] *= grad_one(x ? x[i] : 0, y[i], a);
}
