/* State of a [upsample] layer, shared by layer_upsample.c and its kernels. */
#ifndef DN_LAYER_UPSAMPLE_H
#define DN_LAYER_UPSAMPLE_H

#include "dn.h"

typedef struct upsample {
    int k;          /* |stride| */
    int down;       /* stride < 0: block sums */
    float scale;
} upsample;

#endif /* DN_LAYER_UPSAMPLE_H */
