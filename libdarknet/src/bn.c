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
