/* [yolo] (spec §1.5, §3.10, D5): options, shapes and the console line. The kernels
   apply the logistic on x, y, objectness and class scores (unless new_coords=1) and the
   scale_x_y transform of x and y; in training the loss of yolo_loss.c. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "layer_yolo.h"

/* Read by upstream for data augmentation, logging and tracking; accepted without effect here. */
static const char *const training_keys[] = {
    "jitter", "random", "resize", "show_details", "map", "embedding_layer", "track_history_size", "sim_thresh",
    "dets_for_track", "dets_for_show", "track_ciou_norm", NULL};

/* Not read by upstream either (it prints "Unused field"), but present in upstream cfgs. */
static const char *const upstream_unused_keys[] = {"beta1", "uc_normalizer", NULL};

static int count_items(const char *s)
{
    int n = 1;
    for (; *s; s++) n += *s == ',';
    return n;
}

dn_status yolo_parse_iou_kind(dn_parse_ctx *ctx, const char *key, const char *def, int *out)
{
    const char *v = dn_opt_str(ctx, key, def);
    for (int i = 0; i < (int)(sizeof iou_names / sizeof *iou_names); i++)
        if (strcmp(v, iou_names[i]) == 0) {
            *out = i;
            return DN_OK;
        }
    return dn_parse_fail(ctx, "unknown %s '%s'; use mse, iou, giou, diou or ciou", key, v);
}

/* anchors= must hold whole (w, h) pairs, at least num of them (the mistakes behind most
   "wrong boxes" reports: a missing comma merges two values). */
static dn_status check_anchor_count(dn_parse_ctx *ctx, int values, int num)
{
    if (values % 2)
        return dn_parse_fail(ctx, "anchors= lists %d values, an odd number: anchors are width,height pairs; look for "
                             "a missing or extra comma", values);
    if (values < 2 * num)
        return dn_parse_fail(ctx, "anchors= lists %d pairs but num=%d needs %d: add the missing anchors or set "
                             "num=%d", values / 2, num, num, values / 2);
    return DN_OK;
}

/* counters_per_class= (spec D5.6): class c's multiplier max_k(n_k) / n_c, capped at max_delta. */
static dn_status parse_class_multipliers(yolo *p, dn_parse_ctx *ctx)
{
    const char *list = dn_opt_str(ctx, "counters_per_class", NULL);
    if (!list) return DN_OK;
    const int cap = count_items(list);
    DN_TRY(dn_alloc_floats(&p->class_multipliers, cap > p->classes ? cap : p->classes, "counters_per_class"));
    const int got = dn_opt_floats(ctx, "counters_per_class", p->class_multipliers, cap);
    if (got < 0) return DN_ERR_CFG;
    if (got != p->classes)
        return dn_parse_fail(ctx, "counters_per_class= lists %d values but classes=%d: give one count per class",
                             got, p->classes);
    float most = 1;
    for (int c = 0; c < got; c++) {
        if (p->class_multipliers[c] < 1) p->class_multipliers[c] = 1;
        if (p->class_multipliers[c] > most) most = p->class_multipliers[c];
    }
    for (int c = 0; c < got; c++) p->class_multipliers[c] = fminf(most / p->class_multipliers[c], p->max_delta);
    return DN_OK;
}

/* Loss options (spec §1.5, D5); the truth holds max boxes of 6 floats per image. */
static dn_status parse_training(dn_layer *l, yolo *p, dn_parse_ctx *ctx)
{
    p->net_w = ctx->net_w;
    p->net_h = ctx->net_h;
    p->ignore_thresh = dn_opt_float(ctx, "ignore_thresh", .5f);
    p->truth_thresh = dn_opt_float(ctx, "truth_thresh", 1);
    p->iou_thresh = dn_opt_float(ctx, "iou_thresh", 1);
    p->max_delta = dn_opt_float(ctx, "max_delta", FLT_MAX);
    p->label_smooth_eps = dn_opt_float(ctx, "label_smooth_eps", 0);
    p->focal_loss = dn_opt_int(ctx, "focal_loss", 0);
    p->objectness_smooth = dn_opt_int(ctx, "objectness_smooth", 0);
    DN_TRY(parse_class_multipliers(p, ctx));
    static const char *const untrained[] = {"map", "embedding_layer", NULL}; /* class remapping, tracking */
    for (const char *const *k = untrained; ctx->train && *k; k++)
        if (dn_cfg_find(ctx->sec, *k))
            return dn_parse_fail(ctx, "%s= is not supported for training yet; remove it to train", *k);
    if (p->max_boxes > 1 << 20) return dn_parse_fail(ctx, "max=%d boxes per image is too many", p->max_boxes);
    l->has_cost = 1;
    l->truths = p->max_boxes * 6;
    l->stats = &p->stats;
    return DN_OK;
}

dn_status yolo_parse_options(yolo *p, dn_parse_ctx *ctx, int corners_nms)
{
    p->scale_x_y = dn_opt_float(ctx, "scale_x_y", 1);
    p->iou_normalizer = dn_opt_float(ctx, "iou_normalizer", .75f);
    p->obj_normalizer = dn_opt_float(ctx, "obj_normalizer", 1);
    p->cls_normalizer = dn_opt_float(ctx, "cls_normalizer", 1);
    p->delta_normalizer = dn_opt_float(ctx, "delta_normalizer", 1);
    p->beta_nms = dn_opt_float(ctx, "beta_nms", .6f);
    DN_TRY(yolo_parse_iou_kind(ctx, "iou_loss", "mse", &p->iou_loss));
    DN_TRY(yolo_parse_iou_kind(ctx, "iou_thresh_kind", "iou", &p->iou_thresh_kind));
    /* cornersnms suppresses on IoU > thresh in the same order as the default (spec D2.4): the same result */
    const char *nms = dn_opt_str(ctx, "nms_kind", "default");
    if (strcmp(nms, "default") == 0 || (corners_nms && strcmp(nms, "cornersnms") == 0)) p->nms_kind = DN_NMS_DEFAULT;
    else if (strcmp(nms, "greedynms") == 0) p->nms_kind = DN_NMS_GREEDY;
    else if (strcmp(nms, "diounms") == 0) p->nms_kind = DN_NMS_DIOU;
    else return dn_parse_fail(ctx, "unknown nms_kind '%s'; use %s", nms, corners_nms
                              ? "default, greedynms, diounms or cornersnms" : "default, greedynms or diounms");
    return DN_OK;
}

dn_status yolo_parse_head(yolo *p, dn_parse_ctx *ctx)
{
    p->classes = dn_opt_int(ctx, "classes", 20);
    p->total = dn_opt_int(ctx, "num", 1);
    if (p->classes < 0) return dn_parse_fail(ctx, "classes=%d must be >= 0", p->classes);
    if (p->total < 1 || p->total > 4096) return dn_parse_fail(ctx, "num=%d must be between 1 and 4096", p->total);

    /* anchors: all listed pairs are kept (at least num of them, 0.5 by default) */
    const char *anchors = dn_opt_str(ctx, "anchors", NULL);
    int na = 0;
    float *listed = NULL;
    if (anchors) {
        int cap = count_items(anchors);
        if (!(listed = malloc(sizeof *listed * cap))) return dn_fail(DN_ERR_OOM, "out of memory");
        na = dn_opt_floats(ctx, "anchors", listed, cap);
        dn_status bad = na < 0 ? DN_ERR_CFG : check_anchor_count(ctx, na, p->total);
        if (bad != DN_OK) {
            free(listed);
            return bad;
        }
    }
    p->n_anchors = na / 2 > p->total ? na / 2 : p->total;
    dn_status st = dn_alloc_floats(&p->anchors, 2 * (size_t)p->n_anchors, "anchors");
    for (int i = 0; st == DN_OK && i < 2 * p->n_anchors; i++) p->anchors[i] = i < na ? listed[i] : .5f;
    free(listed);
    DN_TRY(st);
    for (int i = 0; i < 2 * p->n_anchors; i++)
        if (!(p->anchors[i] >= 0))
            return dn_parse_fail(ctx, "anchors= value %g (item %d) must be a non-negative size in pixels",
                                 p->anchors[i], i + 1);

    const char *mask = dn_opt_str(ctx, "mask", NULL);
    if (mask) {
        int cap = count_items(mask);
        if (!(p->mask = malloc(sizeof *p->mask * cap))) return dn_fail(DN_ERR_OOM, "out of memory");
        p->n = dn_opt_ints(ctx, "mask", p->mask, cap);
        if (p->n < 0) return DN_ERR_CFG;
        if (p->n == 0) return dn_parse_fail(ctx, "mask=%s lists no anchor index", mask);
        for (int i = 0; i < p->n; i++) {
            if (p->mask[i] < 0 || p->mask[i] >= p->n_anchors)
                return dn_parse_fail(ctx, "mask value %d is not an anchor index: num=%d and anchors= lists %d pairs, "
                                     "so use 0..%d", p->mask[i], p->total, na / 2, p->n_anchors - 1);
            if (p->mask[i] >= p->total)
                return dn_parse_fail(ctx, "mask value %d is >= num=%d (upstream reads past its anchors there): set "
                                     "num= to the number of anchor pairs (%d) or use mask values 0..%d", p->mask[i],
                                     p->total, na / 2, p->total - 1);
        }
    } else {
        p->n = p->total;
        if (!(p->mask = malloc(sizeof *p->mask * p->n))) return dn_fail(DN_ERR_OOM, "out of memory");
        for (int i = 0; i < p->n; i++) p->mask[i] = i;
    }
    return DN_OK;
}

static dn_status parse(dn_layer *l, dn_parse_ctx *ctx)
{
    yolo *p = calloc(1, sizeof *p);
    if (!(l->p = p)) return dn_fail(DN_ERR_OOM, "out of memory");
    DN_TRY(dn_require_image(ctx, l));
    DN_TRY(yolo_parse_head(p, ctx));

    p->max_boxes = dn_opt_int(ctx, "max", 200);
    p->new_coords = dn_opt_int(ctx, "new_coords", 0) != 0;
    DN_TRY(yolo_parse_options(p, ctx, 0));
    if (p->max_boxes < 0) return dn_parse_fail(ctx, "max=%d must be >= 0", p->max_boxes);
    DN_TRY(parse_training(l, p, ctx));
    if (!(p->scale_x_y > 0)) return dn_parse_fail(ctx, "scale_x_y=%g must be positive", p->scale_x_y);
    dn_opt_accept(ctx, training_keys);
    for (const char *const *k = upstream_unused_keys; *k; k++) {
        dn_option *o = dn_cfg_find(ctx->sec, *k);
        if (o) dn_log(DN_LOG_WARNING, "Unused field: '%s = %s'", o->key, o->val ? o->val : "");
    }

    const long per_cell = (long)p->n * (p->classes + 5);
    if ((long)l->c != per_cell || l->inputs != l->w * l->h * l->c)
        return dn_parse_fail(ctx, "the layer before outputs %d x %d x %d (w x h x c) but this [yolo] layer needs %ld "
                             "channels = len(mask) * (classes + 5) = %d * (%d + 5): set filters=%ld in the "
                             "[convolutional] layer before this [yolo] layer (or fix classes=/mask=)",
                             l->w, l->h, l->c, per_cell, p->n, p->classes, per_cell);
    l->out_w = l->w;
    l->out_h = l->h;
    l->out_c = l->c;
    l->outputs = l->inputs;
    return DN_OK;
}

/* upstream's get_yolo_detections (spec D1.3): cells in raster order, anchor slots
   inner; one record per slot whose objectness exceeds thresh. */
static dn_status boxes(const dn_layer *l, const dn_box_query *q, dn_detector_info *info, dn_detections *out)
{
    const yolo *p = l->p;
    info->classes = p->classes;
    info->nms_kind = p->nms_kind;
    info->beta_nms = p->beta_nms;
    if (!out) return DN_OK;
    const int spatial = l->w * l->h, entries = p->classes + 5, from = out->n;
    const float *o = l->output.data + (size_t)q->b * l->outputs;
    for (int i = 0; i < spatial; i++) {
        const int row = i / l->w, col = i % l->w;
        for (int a = 0; a < p->n; a++) {
            const float *v = o + (size_t)a * entries * spatial + i;
            const float obj = v[4 * spatial], tw = v[2 * spatial], th = v[3 * spatial];
            if (!(obj > q->thresh)) continue;
            const float *anchor = p->anchors + 2 * p->mask[a];
            float w, h;
            if (p->new_coords) {
                w = tw * tw * 4 * anchor[0] / q->net_w;
                h = th * th * 4 * anchor[1] / q->net_h;
            } else {
                w = (float)(exp(tw) * anchor[0] / q->net_w);
                h = (float)(exp(th) * anchor[1] / q->net_h);
            }
            float *prob = dn_detections_add(out, (col + v[0]) / l->w, (row + v[spatial]) / l->h, w, h, obj);
            if (!prob) return DN_ERR_OOM;
            for (int j = 0; j < p->classes; j++) {
                const float s = obj * v[(5 + j) * spatial];
                prob[j] = s > q->thresh ? s : 0;
            }
        }
    }
    dn_correct_boxes(out, from, q);
    return DN_OK;
}

static void describe(const dn_layer *l, char *buf, size_t n)
{
    const yolo *p = l->p;
    snprintf(buf, n,
             "yolo\n[yolo] params: iou loss: %s (%d), iou_norm: %2.2f, obj_norm: %2.2f, cls_norm: %2.2f, "
             "delta_norm: %2.2f, scale_x_y: %2.2f",
             iou_names[p->iou_loss], p->iou_loss, p->iou_normalizer, p->obj_normalizer, p->cls_normalizer,
             p->delta_normalizer, p->scale_x_y);
}

void yolo_free_state(yolo *p)
{
    free(p->mask);
    free(p->anchors);
    free(p->class_multipliers);
}

static void free_yolo(dn_layer *l)
{
    if (l->p) yolo_free_state(l->p);
}

void yolo_head_attrs(const yolo *p, dn_attrs *a)
{
    dn_attr_int(a, "classes", p->classes);
    dn_attr_int(a, "num", p->total);
    dn_attr_ints(a, "mask", p->mask, p->n);
    dn_attr_floats(a, "anchors", p->anchors, 2 * p->n_anchors);
    dn_attr_float(a, "scale_x_y", p->scale_x_y);
}

static void attrs(const dn_layer *l, dn_attrs *a)
{
    const yolo *p = l->p;
    yolo_head_attrs(p, a);
    dn_attr_int(a, "new_coords", p->new_coords);
}

const dn_layer_ops dn_layer_yolo = {
    .name = "yolo", .parse = parse, .describe = describe, .attrs = attrs,
    .free = free_yolo, .boxes = boxes,
};
