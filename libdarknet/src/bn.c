/* Batch normalisation shared by [convolutional], [connected] and [batchnorm]:
   inference with rolling statistics (spec §3.3), training with the GPU path's
   semantics (spec §4.4: biased batch variance, rolling factor 0.01, beta gradient). */
#include <math.h>
#include <string.h>

#include "dn.h"

#define BN_EPS 1e-5f

dn_status dn_bn_init(dn_bn *bn, int n, int spatial, int batch, int train, float rolling)
{
    memset(bn, 0, sizeof *bn);
    bn->n = n;
    bn->spatial = spatial;
    bn->rolling = rolling;
    DN_TRY(dn_alloc_floats(&bn->scales, n, "batch-norm scales"));
    DN_TRY(dn_alloc_floats(&bn->mean, n, "batch-norm rolling mean"));
    DN_TRY(dn_alloc_floats(&bn->variance, n, "batch-norm rolling variance"));
    for (int i = 0; i < n; i++) bn->scales[i] = 1;
    if (train) {
        size_t total = (size_t)batch * n * spatial;
        DN_TRY(dn_alloc_floats(&bn->scale_updates, n, "batch-norm scale updates"));
        DN_TRY(dn_alloc_floats(&bn->batch_mean, n, "batch-norm mean"));
        DN_TRY(dn_alloc_floats(&bn->batch_var, n, "batch-norm variance"));
        DN_TRY(dn_alloc_floats(&bn->x_norm, total, "batch-norm normalised input"));
    }
    return DN_OK;
}

void dn_bn_free(dn_bn *bn)
{
    free(bn->scales);
    free(bn->mean);
    free(bn->variance);
    free(bn->scale_updates);
    free(bn->batch_mean);
    free(bn->batch_var);
    free(bn->x_norm);
}

void dn_bn_forward(dn_bn *bn, float *y, int batch, int training)
{
    const int n = bn->n, sp = bn->spatial;
    const long count = (long)batch * sp;
    #pragma omp parallel for
    for (int f = 0; f < n; f++) {
        float mean = bn->mean[f], var = bn->variance[f];
        if (training) {
            double s = 0, s2 = 0;
            for (int b = 0; b < batch; b++) {
                const float *p = y + ((long)b * n + f) * sp;
                for (int i = 0; i < sp; i++) s += p[i];
            }
            mean = (float)(s / count);
            for (int b = 0; b < batch; b++) {
                const float *p = y + ((long)b * n + f) * sp;
                for (int i = 0; i < sp; i++) s2 += (double)(p[i] - mean) * (p[i] - mean);
            }
            var = (float)(s2 / count);
            bn->batch_mean[f] = mean;
            bn->batch_var[f] = var;
            /* the rolling variance is the unbiased one, as cuDNN keeps it */
            float unbiased = count > 1 ? (float)(s2 / (count - 1)) : var;
            bn->mean[f] = (1 - bn->rolling) * bn->mean[f] + bn->rolling * mean;
            bn->variance[f] = (1 - bn->rolling) * bn->variance[f] + bn->rolling * unbiased;
        }
        const float inv = (float)(1.0 / sqrt((double)var + BN_EPS)), g = bn->scales[f];
        for (int b = 0; b < batch; b++) {
            float *p = y + ((long)b * n + f) * sp;
            float *xn = training ? bn->x_norm + ((long)b * n + f) * sp : NULL;
            for (int i = 0; i < sp; i++) {
                float v = (p[i] - mean) * inv;
                if (xn) xn[i] = v;
                p[i] = v * g;
            }
        }
    }
}

void dn_bn_backward(dn_bn *bn, float *delta, int batch)
{
    const int n = bn->n, sp = bn->spatial;
    const long count = (long)batch * sp;
    #pragma omp parallel for
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

float *dn_bn_param(dn_bn *bn, const char *name, float **delta)
{
    if (strcmp(name, "scales") == 0) {
        *delta = bn->scale_updates;
        return bn->scales;
    }
    if (strcmp(name, "rolling_mean") == 0) return bn->mean;
    if (strcmp(name, "rolling_variance") == 0) return bn->variance;
    return NULL;
}

void dn_add_bias(float *y, const float *bias, int batch, int n, int spatial)
{
    #pragma omp parallel for collapse(2)
    for (int b = 0; b < batch; b++)
        for (int f = 0; f < n; f++) {
            float *p = y + ((long)b * n + f) * spatial;
            const float v = bias[f];
            for (int i = 0; i < spatial; i++) p[i] += v;
        }
}

void dn_backward_bias(float *bias_updates, const float *delta, int batch, int n, int spatial)
{
    #pragma omp parallel for if ((long)batch * n * spatial > 65536)
    for (int f = 0; f < n; f++) {
        double s = 0;
        for (int b = 0; b < batch; b++) {
            const float *p = delta + ((long)b * n + f) * spatial;
            for (int i = 0; i < spatial; i++) s += p[i];
        }
        bias_updates[f] += (float)s;
    }
}
