/* [yolo] (spec §1.5, §3.10, §8.1): at inference, the logistic on x, y, objectness
   and class scores (unless new_coords=1), then the scale_x_y grid-sensitivity
   transform of x and y. Training keys are accepted; the loss is not implemented yet,
   so backward only passes this layer's delta on. */
#include <math.h>
#include <string.h>

#include "layer_yolo.h"

/* Read by upstream for training, tracking and NMS; accepted here without effect on inference. */
static const char *const training_keys[] = {
    "jitter", "ignore_thresh", "truth_thresh", "iou_thresh", "random", "resize", "focal_loss", "label_smooth_eps",
    "objectness_smooth", "max_delta", "counters_per_class", "show_details", "map", "embedding_layer",
    "track_history_size", "sim_thresh", "dets_for_track", "dets_for_show", "track_ciou_norm", NULL};

/* Not read by upstream either (it prints "Unused field"), but present in upstream cfgs. */
static const char *const upstream_unused_keys[] = {"beta1", "uc_normalizer", NULL};

static int count_items(const char *s)
{
    int n = 1;
    for (; *s; s++) n += *s == ',';
    return n;
}

static dn_status parse_iou_kind(dn_parse_ctx *ctx, const char *key, const char *def, int *out)
{
    const char *v = dn_opt_str(ctx, key, def);
    for (int i = 0; i < (int)(sizeof iou_names / sizeof *iou_names); i++)
        if (strcmp(v, iou_names[i]) == 0) {
            *out = i;
            return DN_OK;
        }
    return dn_parse_fail(ctx, "unknown %s '%s'; use mse, iou, giou, diou or ciou", key, v);
}

static dn_status parse(dn_layer *l, dn_parse_ctx *ctx)
{
    yolo *p = calloc(1, sizeof *p);
    if (!(l->p = p)) return dn_fail(DN_ERR_OOM, "out of memory");
    DN_TRY(dn_require_image(ctx, l));
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
        if (na < 0 || na % 2) {
            free(listed);
            return na < 0 ? DN_ERR_CFG
                          : dn_parse_fail(ctx, "anchors= lists %d values, an odd count; it needs width,height pairs",
                                          na);
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
                dn_log(DN_LOG_WARNING, "%s:%d: [yolo] (layer %d): mask value %d is >= num=%d; using anchor pair %d "
                       "of anchors=", ctx->cfg->path, ctx->sec->line, ctx->index, p->mask[i], p->total, p->mask[i]);
        }
    } else {
        p->n = p->total;
        if (!(p->mask = malloc(sizeof *p->mask * p->n))) return dn_fail(DN_ERR_OOM, "out of memory");
        for (int i = 0; i < p->n; i++) p->mask[i] = i;
    }

    p->max_boxes = dn_opt_int(ctx, "max", 200);
    p->scale_x_y = dn_opt_float(ctx, "scale_x_y", 1);
    p->new_coords = dn_opt_int(ctx, "new_coords", 0) != 0;
    p->iou_normalizer = dn_opt_float(ctx, "iou_normalizer", .75f);
    p->obj_normalizer = dn_opt_float(ctx, "obj_normalizer", 1);
    p->cls_normalizer = dn_opt_float(ctx, "cls_normalizer", 1);
    p->delta_normalizer = dn_opt_float(ctx, "delta_normalizer", 1);
    p->beta_nms = dn_opt_float(ctx, "beta_nms", .6f);
    DN_TRY(parse_iou_kind(ctx, "iou_loss", "mse", &p->iou_loss));
    DN_TRY(parse_iou_kind(ctx, "iou_thresh_kind", "iou", &p->iou_thresh_kind));
    const char *nms = dn_opt_str(ctx, "nms_kind", "default");
    if (strcmp(nms, "default") == 0) p->nms_kind = 0;
    else if (strcmp(nms, "greedynms") == 0) p->nms_kind = 1;
    else if (strcmp(nms, "diounms") == 0) p->nms_kind = 2;
    else return dn_parse_fail(ctx, "unknown nms_kind '%s'; use default, greedynms or diounms", nms);
    if (p->max_boxes < 0) return dn_parse_fail(ctx, "max=%d must be >= 0", p->max_boxes);
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

static void describe(const dn_layer *l, char *buf, size_t n)
{
    const yolo *p = l->p;
    snprintf(buf, n,
             "yolo\n[yolo] params: iou loss: %s (%d), iou_norm: %2.2f, obj_norm: %2.2f, cls_norm: %2.2f, "
             "delta_norm: %2.2f, scale_x_y: %2.2f",
             iou_names[p->iou_loss], p->iou_loss, p->iou_normalizer, p->obj_normalizer, p->cls_normalizer,
             p->delta_normalizer, p->scale_x_y);
}

static void free_yolo(dn_layer *l)
{
    yolo *p = l->p;
    if (!p) return;
    free(p->mask);
    free(p->anchors);
}

static void attrs(const dn_layer *l, dn_attrs *a)
{
    const yolo *p = l->p;
    dn_attr_int(a, "classes", p->classes);
    dn_attr_int(a, "num", p->total);
    dn_attr_ints(a, "mask", p->mask, p->n);
    dn_attr_floats(a, "anchors", p->anchors, 2 * p->n_anchors);
    dn_attr_float(a, "scale_x_y", p->scale_x_y);
    dn_attr_int(a, "new_coords", p->new_coords);
}

const dn_layer_ops dn_layer_yolo = {
    .name = "yolo", .parse = parse, .describe = describe, .attrs = attrs,
    .free = free_yolo,
};
