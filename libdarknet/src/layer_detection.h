/* State of a [detection] layer (YOLOv1), shared by layer_detection.c and its kernels. */
#ifndef DN_LAYER_DETECTION_H
#define DN_LAYER_DETECTION_H

#include "dn.h"

/* Output per image: side^2 * classes class probabilities (cell-major), side^2 * n
   confidences, then side^2 * n boxes of 4 values (x, y offsets in the cell, w, h). */
typedef struct detection {
    int side, n, classes, softmax, sqrt;
} detection;

#endif /* DN_LAYER_DETECTION_H */
