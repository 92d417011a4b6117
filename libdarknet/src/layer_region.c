/* [region] (YOLOv2 head; spec D1.5), inference: the output is the input transposed to
   cell-major records [tx, ty, tw, th, obj, class_0 ..] (record = cell * num + anchor), with
   the logistic on obj and, with tree= (yolo9000), a softmax over each group of siblings of
   the softmax tree, else with softmax=1 a softmax over the classes. Boxes decode with the
   logistic on tx, ty and anchors in grid cells. Training (its loss) is not implemented. */
#include <math.h>
#include <string.h>

#include "layer_region.h"

static const char *const accepted[] = {
    "log", "sqrt", "background", "max", "jitter", "rescore", "thresh", "absolute", "random", "coord_scale",
    "object_scale", "noobject_scale", "mask_scale", "class_scale", "bias_match", "focal_loss", "map", NULL};

static dn_status parse(dn_layer *l, dn_parse_ctx *ctx)
{
    region *p = calloc(1, sizeof *p);
    if (!(l->p = p)) return dn_fail(DN_ERR_OOM, "out of memory");
    DN_TRY(dn_require_image(ctx, l));
    p->coords = dn_opt_int(ctx, "coords", 4);
    p->classes = dn_opt_int(ctx, "classes", 20);
    p->n = dn_opt_int(ctx, "num", 1);
    p->softmax = dn_opt_int(ctx, "softmax", 0) != 0;
    p->classfix = dn_opt_int(ctx, "classfix", 0);
    dn_opt_accept(ctx, accepted);
    if (ctx->train)
        return dn_parse_fail(ctx, "training a [region] (YOLOv2) head is not supported; build it with a batch for "
                             "inference, or train a [yolo] model");
    if (p->coords != 4) return dn_parse_fail(ctx, "coords=%d: only coords=4 is supported", p->coords);
    if (p->classes < 1 || p->n < 1 || p->n > 4096)
        return dn_parse_fail(ctx, "classes=%d and num=%d must be >= 1", p->classes, p->n);
    const long per_cell = (long)p->n * (p->classes + p->coords + 1);
    if (l->c != per_cell)
        return dn_parse_fail(ctx, "the layer before outputs %d channels but this [region] layer needs num * (classes "
                             "+ coords + 1) = %ld: set filters=%ld in the [convolutional] layer before it",
                             l->c, per_cell, per_cell);
    const char *tree = dn_opt_str(ctx, "tree", NULL);
    if (tree && region_tree_read(&p->tree, tree, ctx->cfg->path, p->classes) != DN_OK) {
        char why[1024];
        snprintf(why, sizeof why, "%s", dn_last_error());
        return dn_parse_fail(ctx, "tree=%s: %s", tree, why);
    }
    DN_TRY(dn_alloc_floats(&p->anchors, 2 * (size_t)p->n, "anchors"));
    for (int i = 0; i < 2 * p->n; i++) p->anchors[i] = .5f;
    if (dn_opt_str(ctx, "anchors", NULL)) {
        float listed[2 * 4096 + 1];
        const int na = dn_opt_floats(ctx, "anchors", listed, 2 * p->n + 1);
        if (na < 0) return DN_ERR_CFG;
        if (na != 2 * p->n)
            return dn_parse_fail(ctx, "anchors= lists %d values but num=%d needs %d (width,height pairs in grid "
                                 "cells)", na, p->n, 2 * p->n);
        memcpy(p->anchors, listed, sizeof(float) * na);
    }
    l->out_w = l->w;
    l->out_h = l->h;
    l->out_c = l->c;
    l->outputs = l->inputs;
    return DN_OK;
}

/* With a softmax tree: absolute probabilities (each node times its ancestors), then only the
   last class above 0.5 is kept, unscaled, when the objectness exceeds thresh (spec D1.5;
   upstream's hierarchy_predictions, which does this in the layer's output). */
static void tree_probs(const region_tree *t, const float *cls, float scale, float thresh, float *prob)
{
    for (int j = 0; j < t->n; j++) prob[j] = t->parent[j] >= 0 ? cls[j] * prob[t->parent[j]] : cls[j];
    int found = 0;
    for (int j = t->n - 1; j >= 0; j--) {
        if (!found && prob[j] > .5f) found = 1;
        else prob[j] = 0;
        if (!(scale > thresh)) prob[j] = 0;
    }
}

/* custom_get_region_detections (spec D1.5): every record, objectness 1. Its hier_thresh
   (q->hier) is not used: upstream's detector commands take this path. */
static dn_status boxes(const dn_layer *l, const dn_box_query *q, dn_detector_info *info, dn_detections *out)
{
    const region *p = l->p;
    info->classes = p->classes;
    info->nms_kind = DN_NMS_DEFAULT;
    info->beta_nms = .6f;
    if (!out) return DN_OK;
    const int size = p->classes + p->coords + 1, from = out->n;
    const float *o = l->output.data + (size_t)q->b * l->outputs;
    for (int i = 0; i < l->w * l->h; i++) {
        const int row = i / l->w, col = i % l->w;
        for (int a = 0; a < p->n; a++) {
            const float *r = o + ((size_t)i * p->n + a) * size;
            float scale = r[4];
            if (p->classfix == -1 && scale < .5f) scale = 0;
            float *prob = dn_detections_add(out, (col + region_logistic(r[0])) / l->w, (row + region_logistic(r[1])) / l->h,
                                            (float)(exp(r[2]) * p->anchors[2 * a] / l->w),
                                            (float)(exp(r[3]) * p->anchors[2 * a + 1] / l->h), 1);
            if (!prob) return DN_ERR_OOM;
            if (p->tree.n) {
                tree_probs(&p->tree, r + 5, scale, q->thresh, prob);
                continue;
            }
            for (int j = 0; j < p->classes; j++) {
                const float s = scale * r[5 + j];
                prob[j] = s > q->thresh ? s : 0;
            }
        }
    }
    dn_correct_boxes(out, from, q);
    return DN_OK;
}

static void describe(const dn_layer *l, char *buf, size_t n)
{
    (void)l;
    snprintf(buf, n, "detection");
}

static void free_region(dn_layer *l)
{
    region *p = l->p;
    if (!p) return;
    free(p->anchors);
    region_tree_free(&p->tree);
}

const dn_layer_ops dn_layer_region = {
    .name = "region", .parse = parse, .describe = describe, .free = free_region,
    .boxes = boxes,
};
