/* Batch normalisation (spec §3.3, §4.4) and bias loops on the CPU. */
#include <math.h>
#include <string.h>

#include "cpu.h"

#define BN_EPS 1e-5f

void dn_bn_forward(dn_bn *bn, float *y, int batch, int training, const float *bias, dn_act act)
{
    const int n = bn->n, sp = bn->spatial;
    const long count = (long)batch * sp;
    #pragma omp parallel for num_threads(dn_cpu_threads())
    for (int f = 0; f < n; f++) {
        float mean = bn->mean[f], var = bn->variance[f];
        if (training) { /* mean and variance in one pass: sums of y and y^2 in double */
            double s = 0, s2 = 0;
            for (int b = 0; b < batch; b++) {
                const float *p = y + ((long)b * n + f) * sp;
                #pragma omp simd reduction(+ : s, s2)
                for (int i = 0; i < sp; i++) {
                    s += p[i];
                    s2 += (double)p[i] * p[i];
                }
            }
            const double m = s / count, sq = s2 - s * m > 0 ? s2 - s * m : 0; /* sum of (y - m)^2 */
            mean = (float)m;
            var = (float)(sq / count);
            bn->batch_mean[f] = mean;
            bn->batch_var[f] = var;
            /* the rolling variance is the unbiased one, as cuDNN keeps it */
            float unbiased = count > 1 ? (float)(sq / (count - 1)) : var;
            bn->mean[f] = (1 - bn->rolling) * bn->mean[f] + bn->rolling * mean;
            bn->variance[f] = (1 - bn->rolling) * bn->variance[f] + bn->rolling * unbiased;
        }
        const float inv = (float)(1.0 / sqrt((double)var + BN_EPS)), g = bn->scales[f];
        for (int b = 0; b < batch; b++) {
            float *p = y + ((long)b * n + f) * sp;
            if (training) { /* keep x_hat for backward */
                float *xn = bn->x_norm + ((long)b * n + f) * sp;
                #pragma omp simd
                for (int i = 0; i < sp; i++) {
                    xn[i] = (p[i] - mean) * inv;
                    p[i] = xn[i] * g;
                }
            } else {
                #pragma omp simd
                for (int i = 0; i < sp; i++) p[i] = (p[i] - mean) * inv * g;
            }
            /* while the plane is in cache */
            if (bias || act != DN_ACT_LINEAR) dn_activate_span(p, sp, bias ? bias[f] : 0.f, act);
        }
    }
}

void dn_bn_backward(dn_bn *bn, float *delta, int batch)
{
    const int n = bn->n, sp = bn->spatial;
    const long count = (long)batch * sp;
    #pragma omp parallel for num_threads(dn_cpu_threads())
    for (int f = 0; f < n; f++) {
        double dg = 0, sum_d = 0; /* sums of delta * x_hat and of delta */
        for (int b = 0; b < batch; b++) {
            const long o = ((long)b * n + f) * sp;
            for (int i = 0; i < sp; i++) {
                dg += (double)delta[o + i] * bn->x_norm[o + i];
                sum_d += delta[o + i];
            }
        }
        bn->scale_updates[f] += (float)dg;
        /* exact gradient of the normalisation, batch statistics biased (cuDNN) */
        const float g = bn->scales[f], inv = (float)(1.0 / sqrt((double)bn->batch_var[f] + BN_EPS));
        const float md = (float)(sum_d / count), mdx = (float)(dg / count);
        for (int b = 0; b < batch; b++) {
            const long o = ((long)b * n + f) * sp;
            for (int i = 0; i < sp; i++)
                delta[o + i] = g * inv * (delta[o + i] - md - bn->x_norm[o + i] * mdx);
        }
    }
}

void dn_add_bias(float *y, const float *bias, int batch, int n, int spatial)
{
    #pragma omp parallel for collapse(2) num_threads(dn_cpu_threads())
    for (int b = 0; b < batch; b++)
        for (int f = 0; f < n; f++) {
            float *p = y + ((long)b * n + f) * spatial;
            const float v = bias[f];
            for (int i = 0; i < spatial; i++) p[i] += v;
        }
}

void dn_backward_bias(float *bias_updates, const float *delta, int batch, int n, int spatial)
{
    #pragma omp parallel for if ((long)batch * n * spatial > 65536) num_threads(dn_cpu_threads())
    for (int f = 0; f < n; f++) {
        double s = 0;
        for (int b = 0; b < batch; b++) {
            const float *p = delta + ((long)b * n + f) * spatial;
            for (int i = 0; i < spatial; i++) s += p[i];
        }
        bias_updates[f] += (float)s;
    }
}

void dn_act_bias_bn_backward(dn_bn *bn, const float *x, const float *y, dn_act a, int batch, int n, int spatial,
                             float *bias_updates, float *delta)
{
    if (dn_act_mixes_channels(a)) { /* its gradient mixes channels: a pass of its own */
        dn_activate_grad(x, y, batch, n, spatial, a, delta);
        a = DN_ACT_LINEAR;
    }
    const long count = (long)batch * spatial;
    #pragma omp parallel for if (count * n > 65536) num_threads(dn_cpu_threads())
    for (int f = 0; f < n; f++) {
        /* pass 1: the activation's gradient and the sums of delta (bias, beta) and of delta * x_hat (gamma) */
        double sum_d = 0, dg = 0;
        for (int b = 0; b < batch; b++) {
            const long o = ((long)b * n + f) * spatial;
            float *d = delta + o;
            const float *xn = bn ? bn->x_norm + o : NULL;
            if (a == DN_ACT_LEAKY) {
                const float *yo = y + o;
                #pragma omp simd reduction(+ : sum_d)
                for (int i = 0; i < spatial; i++) {
                    d[i] *= yo[i] > 0 ? 1.f : .1f;
                    sum_d += d[i];
                }
            } else {
                dn_activate_grad_span(x ? x + o : NULL, y + o, spatial, a, d);
                #pragma omp simd reduction(+ : sum_d)
                for (int i = 0; i < spatial; i++) sum_d += d[i];
            }
            if (xn) {
                #pragma omp simd reduction(+ : dg)
                for (int i = 0; i < spatial; i++) dg += (double)d[i] * xn[i];
            }
        }
        if (bias_updates) bias_updates[f] += (float)sum_d;
        if (!bn) continue;
        bn->scale_updates[f] += (float)dg;
        /* pass 2: the exact gradient of the normalisation, batch statistics biased (cuDNN) */
        const float g = bn->scales[f], inv = (float)(1.0 / sqrt((double)bn->batch_var[f] + BN_EPS));
        const float md = (float)(sum_d / count), mdx = (float)(dg / count);
        for (int b = 0; b < batch; b++) {
            const long o = ((long)b * n + f) * spatial;
            float *d = delta + o;
            const float *xn = bn->x_norm + o;
            #pragma omp simd
            for (int i = 0; i < spatial; i++) d[i] = g * inv * (d[i] - md - xn[i] * mdx);
        }
    }
}
