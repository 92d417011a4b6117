/* State of a [yolo] layer, shared by layer_yolo.c and its kernels. */
#ifndef DN_LAYER_YOLO_H
#define DN_LAYER_YOLO_H

#include "dn.h"

enum { IOU, GIOU, MSE, DIOU, CIOU }; /* upstream's numbering, printed as "iou loss: %s (%d)" */
static const char *const iou_names[] = {"iou", "giou", "mse", "diou", "ciou"};

typedef struct yolo {
    int n;              /* anchor slots of this head = entries in mask */
    int total;          /* num= */
    int n_anchors;      /* anchor pairs kept: max(num, pairs listed in anchors=) */
    int classes;
    int *mask;          /* n anchor indices < n_anchors */
    float *anchors;     /* 2*n_anchors: w0,h0,w1,h1,... in network pixels */
    int new_coords, max_boxes;
    float scale_x_y;
    int iou_loss, iou_thresh_kind, nms_kind; /* nms: 0 default, 1 greedynms, 2 diounms */
    float beta_nms;
    float iou_normalizer, obj_normalizer, cls_normalizer, delta_normalizer;
} yolo;

#endif /* DN_LAYER_YOLO_H */
