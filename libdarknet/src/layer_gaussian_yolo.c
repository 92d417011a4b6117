/* [Gaussian_yolo] (Gaussian YOLOv3; spec D1.4), inference: a [yolo] head whose boxes carry
   a predicted uncertainty (sigma) per coordinate, which lowers the class scores. Training
   (its loss) is not implemented. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "layer_gaussian_yolo.h"

/* Loss and augmentation options, read by upstream for training only. */
static const char *const training_keys[] = {
    "max", "max_delta", "counters_per_class", "label_smooth_eps", "objectness_smooth", "uc_normalizer", "jitter",
    "ignore_thresh", "truth_thresh", "iou_thresh", "random", "map", NULL};

static dn_status parse(dn_layer *l, dn_parse_ctx *ctx)
{
    gaussian_yolo *g = calloc(1, sizeof *g);
    if (!(l->p = g)) return dn_fail(DN_ERR_OOM, "out of memory");
    yolo *p = &g->head;
    DN_TRY(dn_require_image(ctx, l));
    DN_TRY(yolo_parse_head(p, ctx));
    DN_TRY(yolo_parse_options(p, ctx, 1));
    const char *point = dn_opt_str(ctx, "yolo_point", "center");
    g->yolo_point = strcmp(point, "left_top") == 0 ? YOLO_LEFT_TOP
                    : strcmp(point, "right_bottom") == 0 ? YOLO_RIGHT_BOTTOM : YOLO_CENTER;
    dn_opt_accept(ctx, training_keys);
    if (ctx->train)
        return dn_parse_fail(ctx, "training a [Gaussian_yolo] head is not supported; build the network for "
                             "inference, or train a [yolo] model");
    if (!(p->scale_x_y > 0)) return dn_parse_fail(ctx, "scale_x_y=%g must be positive", p->scale_x_y);
    const long per_cell = (long)p->n * (p->classes + GAUSSIAN_BOX);
    if ((long)l->c != per_cell)
        return dn_parse_fail(ctx, "the layer before outputs %d channels but this [Gaussian_yolo] layer needs "
                             "len(mask) * (classes + 9) = %d * (%d + 9): set filters=%ld in the [convolutional] "
                             "layer before it (or fix classes=/mask=)", l->c, p->n, p->classes, per_cell);
    l->out_w = l->w;
    l->out_h = l->h;
    l->out_c = l->c;
    l->outputs = l->inputs;
    return DN_OK;
}

/* get_gaussian_yolo_detections (spec D1.4): as [yolo], with the class scores scaled by
   1 - mean(sigma) and the box shifted when (mu_x, mu_y) is a corner. */
static dn_status boxes(const dn_layer *l, const dn_box_query *q, dn_detector_info *info, dn_detections *out)
{
    const gaussian_yolo *g = l->p;
    const yolo *p = &g->head;
    info->classes = p->classes;
    info->nms_kind = p->nms_kind;
    info->beta_nms = p->beta_nms;
    if (!out) return DN_OK;
    const int spatial = l->w * l->h, entries = p->classes + GAUSSIAN_BOX, from = out->n;
    const float *o = l->output.data + (size_t)q->b * l->outputs;
    for (int i = 0; i < spatial; i++) {
        const int row = i / l->w, col = i % l->w;
        for (int a = 0; a < p->n; a++) {
            const float *v = o + (size_t)a * entries * spatial + i;
            const float obj = v[8 * spatial];
            if (!(obj > q->thresh)) continue;
            const float *anchor = p->anchors + 2 * p->mask[a];
            const float w = (float)(exp(v[4 * spatial]) * anchor[0] / q->net_w);
            const float h = (float)(exp(v[6 * spatial]) * anchor[1] / q->net_h);
            float x = (col + v[0]) / l->w, y = (row + v[2 * spatial]) / l->h;
            if (g->yolo_point == YOLO_LEFT_TOP) {
                x += w / 2;
                y += h / 2;
            } else if (g->yolo_point == YOLO_RIGHT_BOTTOM) {
                x -= w / 2;
                y -= h / 2;
            }
            float *prob = dn_detections_add(out, x, y, w, h, obj);
            if (!prob) return DN_ERR_OOM;
            const float uc = (float)((v[spatial] + v[3 * spatial] + v[5 * spatial] + v[7 * spatial]) / 4.0);
            for (int j = 0; j < p->classes; j++) {
                const float s = (float)(obj * v[(GAUSSIAN_BOX + j) * spatial] * (1.0 - uc));
                prob[j] = s > q->thresh ? s : 0;
            }
        }
    }
    dn_correct_boxes(out, from, q);
    return DN_OK;
}

static void describe(const dn_layer *l, char *buf, size_t n)
{
    const gaussian_yolo *g = l->p;
    const yolo *p = &g->head;
    snprintf(buf, n,
             "[Gaussian_yolo] iou loss: %s (%d), iou_norm: %2.2f, obj_norm: %2.2f, cls_norm: %2.2f, delta_norm: "
             "%2.2f, scale: %2.2f, point: %d",
             iou_names[p->iou_loss], p->iou_loss, p->iou_normalizer, p->obj_normalizer, p->cls_normalizer,
             p->delta_normalizer, p->scale_x_y, g->yolo_point);
}

static void attrs(const dn_layer *l, dn_attrs *a)
{
    const gaussian_yolo *g = l->p;
    yolo_head_attrs(&g->head, a);
    dn_attr_int(a, "yolo_point", g->yolo_point);
}

static void free_gaussian_yolo(dn_layer *l)
{
    gaussian_yolo *g = l->p;
    if (g) yolo_free_state(&g->head);
}

const dn_layer_ops dn_layer_Gaussian_yolo = {
    .name = "Gaussian_yolo", .parse = parse, .describe = describe, .attrs = attrs, .free = free_gaussian_yolo,
    .boxes = boxes,
};
