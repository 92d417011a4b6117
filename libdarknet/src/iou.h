/* Box overlap measures and the gradient of the IoU losses (spec D2.1, D5.3). */
#ifndef DN_IOU_H
#define DN_IOU_H

/* A box in centre form (relative units). */
typedef struct dn_box {
    float x, y, w, h;
} dn_box;

float dn_box_iou(dn_box a, dn_box b);
float dn_box_giou(dn_box a, dn_box b);
/* IoU - (centre distance^2 / enclosing diagonal^2)^beta (DIoU has beta 0.6). */
float dn_box_diou(dn_box a, dn_box b, float beta);
/* Overlap of kind IOU, GIOU, DIOU or CIOU (layer_yolo.h numbering; MSE means IOU). */
float dn_box_iou_kind(dn_box a, dn_box b, int kind);
/* upstream's dx_box_iou: the gradient of the (G/D/C)IoU of pred with truth w.r.t. pred's
   x, y, w, h (kind IOU, GIOU, DIOU or CIOU), into g[4]. */
void dn_box_iou_grad(dn_box pred, dn_box truth, int kind, float g[4]);

#endif /* DN_IOU_H */
