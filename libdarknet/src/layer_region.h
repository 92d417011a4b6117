/* State of a [region] layer, shared by layer_region.c and its kernels. */
#ifndef DN_LAYER_REGION_H
#define DN_LAYER_REGION_H

#include <math.h>

#include "dn.h"

typedef struct region {
    int n, classes, coords, softmax, classfix;
    float *anchors; /* 2n: w, h in grid cells */
} region;

static inline float region_logistic(float x) { return 1.f / (1.f + expf(-x)); }

#endif /* DN_LAYER_REGION_H */
