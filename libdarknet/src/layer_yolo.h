/* State of a [yolo] layer, shared by layer_yolo.c, its kernels and the loss (yolo_loss.c). */
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
    /* training (spec D5) */
    int net_w, net_h;   /* network input size: anchors are in its pixels */
    float ignore_thresh, truth_thresh, iou_thresh, max_delta, label_smooth_eps;
    int focal_loss, objectness_smooth;
    float *class_multipliers; /* from counters_per_class=, or NULL (all 1) */
    dn_detection_stats stats; /* of the last training forward */
} yolo;

/* classes=, num=, anchors= and mask= of a [yolo]-like head (layer_yolo.c). */
dn_status yolo_parse_head(yolo *p, dn_parse_ctx *ctx);
/* scale_x_y=, the normalisers, beta_nms=, iou_loss=, iou_thresh_kind= and nms_kind= of a [yolo]-like head;
   corners_nms: cornersnms is accepted (as the default NMS, which gives the same result). */
dn_status yolo_parse_options(yolo *p, dn_parse_ctx *ctx, int corners_nms);
/* An iou_loss= / iou_thresh_kind= option: mse, iou, giou, diou or ciou (upstream's numbering). */
dn_status yolo_parse_iou_kind(dn_parse_ctx *ctx, const char *key, const char *def, int *out);
/* Free the arrays of a yolo state (not the state itself). */
void yolo_free_state(yolo *p);
/* The attributes a [yolo]-like head shares: classes, num, mask, anchors, scale_x_y. */
void yolo_head_attrs(const yolo *p, dn_attrs *a);

/* upstream's [yolo] training forward on host memory (spec D5.2-D5.7): `output` holds the
   activated outputs (objectness NaN/inf may be zeroed), `delta` receives the deltas,
   `truth` batch records of truth_size floats (x y w h class track_id per box). Sets l->cost
   and the layer's stats; images run on up to `threads` OpenMP threads. */
dn_status dn_yolo_loss(dn_layer *l, float *output, float *delta, const float *truth, int truth_size, int threads);

#endif /* DN_LAYER_YOLO_H */
