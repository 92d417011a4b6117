/* State of a [maxpool] layer, shared by layer_maxpool.c and its kernels. */
#ifndef DN_LAYER_MAXPOOL_H
#define DN_LAYER_MAXPOOL_H

#include "dn.h"

typedef struct maxpool {
    dn_pool win;
    int depth, out_channels;
    int *argmax; /* flat input index of each output's maximum, training */
} maxpool;

#endif /* DN_LAYER_MAXPOOL_H */
