/* State of a [crop] layer, shared by layer_crop.c and its kernels. */
#ifndef DN_LAYER_CROP_H
#define DN_LAYER_CROP_H

#include "dn.h"

typedef struct crop {
    int noadjust; /* 0: output = 2 * input - 1 (pixels [0, 1] to [-1, 1]); 1: output = input */
} crop;

#endif /* DN_LAYER_CROP_H */
