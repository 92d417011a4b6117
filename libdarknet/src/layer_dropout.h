/* State of a [dropout] layer, shared by layer_dropout.c and its kernels. */
#ifndef DN_LAYER_DROPOUT_H
#define DN_LAYER_DROPOUT_H

#include "dn.h"

typedef struct dropout {
    float probability;
    float *rand; /* the draws of the last training forward */
} dropout;

#endif /* DN_LAYER_DROPOUT_H */
