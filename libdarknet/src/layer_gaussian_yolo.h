/* State of a [Gaussian_yolo] layer, shared by layer_gaussian_yolo.c and its kernels. */
#ifndef DN_LAYER_GAUSSIAN_YOLO_H
#define DN_LAYER_GAUSSIAN_YOLO_H

#include "layer_yolo.h"

/* Per anchor slot 9 + classes planes: 0 mu_x, 1 sigma_x, 2 mu_y, 3 sigma_y, 4 mu_w, 5 sigma_w,
   6 mu_h, 7 sigma_h, 8 objectness, 9 + j class j. */
enum { GAUSSIAN_BOX = 9 };
/* upstream's YOLO_POINT values, printed as "point: %d" */
enum { YOLO_CENTER = 1, YOLO_LEFT_TOP = 2, YOLO_RIGHT_BOTTOM = 4 };

typedef struct gaussian_yolo {
    yolo head;      /* classes, anchors, mask, scale_x_y, NMS and loss options */
    int yolo_point; /* what (mu_x, mu_y) locate: the centre or a corner */
} gaussian_yolo;

#endif /* DN_LAYER_GAUSSIAN_YOLO_H */
