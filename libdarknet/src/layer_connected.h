/* State of a [connected] layer, shared by layer_connected.c and its kernels. */
#ifndef DN_LAYER_CONNECTED_H
#define DN_LAYER_CONNECTED_H

#include "dn.h"

typedef struct connected {
    dn_act act;
    float *weights, *biases; /* weights [outputs][inputs] */
    dn_bn bn;
    float *weight_updates, *bias_updates, *preact;
} connected;

#endif /* DN_LAYER_CONNECTED_H */
