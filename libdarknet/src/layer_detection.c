/* [detection] (YOLOv1 head; spec D1.6), inference: the input as it is, with softmax=1 a
   softmax over each cell's class probabilities. Training (its loss) is not implemented. */
#include <math.h>

#include "layer_detection.h"

/* Loss and augmentation options, read by upstream for training only. */
static const char *const training_keys[] = {
    "rescore", "max", "coord_scale", "forced", "object_scale", "noobject_scale", "class_scale", "jitter", "random",
    "reorg", NULL};

static dn_status parse(dn_layer *l, dn_parse_ctx *ctx)
{
    detection *p = calloc(1, sizeof *p);
    if (!(l->p = p)) return dn_fail(DN_ERR_OOM, "out of memory");
    const int coords = dn_opt_int(ctx, "coords", 1);
    p->classes = dn_opt_int(ctx, "classes", 1);
    p->n = dn_opt_int(ctx, "num", 1);
    p->side = dn_opt_int(ctx, "side", 7);
    p->softmax = dn_opt_int(ctx, "softmax", 0) != 0;
    p->sqrt = dn_opt_int(ctx, "sqrt", 0) != 0;
    dn_opt_accept(ctx, training_keys);
    if (ctx->train)
        return dn_parse_fail(ctx, "training a [detection] (YOLOv1) head is not supported; build the network for "
                             "inference, or train a [yolo] model");
    if (coords != 4) return dn_parse_fail(ctx, "coords=%d: only coords=4 is supported", coords);
    if (p->classes < 1 || p->n < 1 || p->side < 1 || p->side > 4096 || p->n > 4096 || p->classes > 1 << 20)
        return dn_parse_fail(ctx, "classes=%d, num=%d and side=%d must be >= 1", p->classes, p->n, p->side);
    const long need = (long)p->side * p->side * ((1 + coords) * p->n + p->classes);
    if (need != l->inputs)
        return dn_parse_fail(ctx, "the layer before outputs %d values but this [detection] layer needs side^2 * "
                             "((coords + 1) * num + classes) = %ld: set output=%ld in the [connected] layer before "
                             "it", l->inputs, need, need);
    /* upstream gives the layer no output shape, only a size */
    l->out_w = l->out_h = l->out_c = 0;
    l->outputs = l->inputs;
    return DN_OK;
}

/* get_detection_detections (spec D1.6): every box of every cell. Upstream multiplies the
   boxes by the image size even for relative output and applies no letterbox correction;
   here relative boxes stay relative (0..1 of the image), pixel boxes equal upstream's. */
static dn_status boxes(const dn_layer *l, const dn_box_query *q, dn_detector_info *info, dn_detections *out)
{
    const detection *p = l->p;
    info->classes = p->classes;
    info->nms_kind = DN_NMS_DEFAULT;
    info->beta_nms = .6f;
    if (!out) return DN_OK;
    const int cells = p->side * p->side;
    const float *o = l->output.data + (size_t)q->b * l->outputs;
    const float *conf = o + (size_t)cells * p->classes, *box = conf + (size_t)cells * p->n;
    const float sx = q->relative ? 1.f : (float)q->img_w, sy = q->relative ? 1.f : (float)q->img_h;
    for (int i = 0; i < cells; i++) {
        const int row = i / p->side, col = i % p->side;
        for (int a = 0; a < p->n; a++) {
            const int k = i * p->n + a;
            const float *b = box + 4 * (size_t)k, scale = conf[k];
            const float w = p->sqrt ? b[2] * b[2] : b[2], h = p->sqrt ? b[3] * b[3] : b[3];
            float *prob = dn_detections_add(out, (b[0] + col) / p->side * sx, (b[1] + row) / p->side * sy, w * sx,
                                            h * sy, scale);
            if (!prob) return DN_ERR_OOM;
            for (int j = 0; j < p->classes; j++) {
                const float s = scale * o[(size_t)i * p->classes + j];
                prob[j] = s > q->thresh ? s : 0;
            }
        }
    }
    return DN_OK;
}

static void describe(const dn_layer *l, char *buf, size_t n)
{
    (void)l;
    snprintf(buf, n, "Detection Layer");
}

static void attrs(const dn_layer *l, dn_attrs *a)
{
    const detection *p = l->p;
    dn_attr_int(a, "classes", p->classes);
    dn_attr_int(a, "num", p->n);
    dn_attr_int(a, "side", p->side);
    dn_attr_int(a, "softmax", p->softmax);
    dn_attr_int(a, "sqrt", p->sqrt);
}

const dn_layer_ops dn_layer_detection = {
    .name = "detection", .parse = parse, .describe = describe, .attrs = attrs, .boxes = boxes,
};
