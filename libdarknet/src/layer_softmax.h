/* State of a [softmax] layer, shared by layer_softmax.c and its kernels. */
#ifndef DN_LAYER_SOFTMAX_H
#define DN_LAYER_SOFTMAX_H

#include "dn.h"

typedef struct softmax {
    int groups;
    float temperature;
    int noloss;
} softmax;

#endif /* DN_LAYER_SOFTMAX_H */
