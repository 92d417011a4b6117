/* State of a [batchnorm] layer, shared by layer_batchnorm.c and its kernels. */
#ifndef DN_LAYER_BATCHNORM_H
#define DN_LAYER_BATCHNORM_H

#include "dn.h"

typedef struct batchnorm {
    dn_bn bn;
    float *biases, *bias_updates;
} batchnorm;

#endif /* DN_LAYER_BATCHNORM_H */
