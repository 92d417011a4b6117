/* The [yolo] training loss as upstream computes it on the host (spec D5.2-D5.7):
   objectness, class and box deltas for one sub-batch, the layer cost and the
   statistics upstream prints per head. Device-free: a backend hands in host copies. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "iou.h"
#include "layer_yolo.h"

#define TRUTH_FIELDS 6 /* x y w h class track_id */

/* Sums of one image, reduced in image order. */
typedef struct sums {
    double iou, iou_loss, giou_loss, cls, obj, anyobj;
    int count, class_count, recall50, recall75, total_bbox, rewritten_bbox;
} sums;

/* Addressing of the (anchor slot, row, col) entries of one image. */
typedef struct head {
    const yolo *p;
    const dn_layer *l;
    int spatial;           /* w * h: stride between the entries of a slot */
    float *out, *delta;    /* this image's */
} head;

static int entry(const head *h, int slot, int cell, int e)
{
    return (slot * (h->p->classes + 5) + e) * h->spatial + cell;
}

/* upstream's get_yolo_box: the prediction at (slot, row j, col i), relative to the input. */
static dn_box predicted(const head *h, int slot, int j, int i)
{
    const yolo *p = h->p;
    const int cell = j * h->l->w + i, s = h->spatial;
    const float *v = h->out + entry(h, slot, cell, 0);
    const float aw = p->anchors[2 * p->mask[slot]], ah = p->anchors[2 * p->mask[slot] + 1];
    dn_box b = {(i + v[0]) / h->l->w, (j + v[s]) / h->l->h, 0, 0};
    if (p->new_coords) {
        b.w = v[2 * s] * v[2 * s] * 4 * aw / p->net_w;
        b.h = v[3 * s] * v[3 * s] * 4 * ah / p->net_h;
    } else {
        b.w = (float)(exp(v[2 * s]) * aw / p->net_w);
        b.h = (float)(exp(v[3 * s]) * ah / p->net_h);
    }
    return b;
}

static float finite_or_zero(float v) { return isfinite(v) ? v : 0; }

/* delta_yolo_box (spec D5.3): add the box delta at (slot, cell) toward truth t;
   returns the prediction's IoU and GIoU with t. */
static void box_delta(const head *h, sums *s, dn_box t, int slot, int j, int i, float norm, float *iou, float *giou)
{
    const yolo *p = h->p;
    const int cell = j * h->l->w + i, sp = h->spatial;
    float *d = h->delta + entry(h, slot, cell, 0);
    const float *v = h->out + entry(h, slot, cell, 0);
    if (d[0] || d[sp] || d[2 * sp] || d[3 * sp]) s->rewritten_bbox++;
    s->total_bbox++;
    dn_box pred = predicted(h, slot, j, i);
    *iou = dn_box_iou(pred, t);
    *giou = dn_box_giou(pred, t);
    if (pred.w == 0) pred.w = 1;
    if (pred.h == 0) pred.h = 1;
    const float aw = p->anchors[2 * p->mask[slot]], ah = p->anchors[2 * p->mask[slot] + 1];
    if (p->iou_loss == MSE) {
        const float scale = 2 - t.w * t.h;
        float target[4] = {t.x * h->l->w - i, t.y * h->l->h - j, 0, 0};
        if (p->new_coords) {
            target[2] = (float)sqrt(t.w * p->net_w / (4 * aw));
            target[3] = (float)sqrt(t.h * p->net_h / (4 * ah));
        } else {
            target[2] = (float)log(t.w * p->net_w / aw);
            target[3] = (float)log(t.h * p->net_h / ah);
        }
        for (int e = 0; e < 4; e++) d[e * sp] += scale * (target[e] - v[e * sp]) * norm;
        return;
    }
    float g[4];
    dn_box_iou_grad(pred, t, p->iou_loss, g);
    if (!p->new_coords) {
        g[2] = (float)(g[2] * exp(v[2 * sp]));
        g[3] = (float)(g[3] * exp(v[3 * sp]));
    }
    for (int e = 0; e < 4; e++) {
        float x = finite_or_zero(g[e] * norm);
        if (p->max_delta != FLT_MAX) x = fminf(fmaxf(x, -p->max_delta), p->max_delta);
        d[e * sp] += x;
    }
}

/* delta_yolo_class (spec D5.4) at (slot, cell) for class c; adds p_c to *avg_cat if given. */
static void class_delta(const head *h, int slot, int cell, int c, double *avg_cat)
{
    const yolo *p = h->p;
    const int sp = h->spatial;
    const float *v = h->out + entry(h, slot, cell, 5);
    float *d = h->delta + entry(h, slot, cell, 5);
    const float eps = p->label_smooth_eps;
    if (avg_cat) *avg_cat += v[c * sp];
    if (d[c * sp]) { /* the slot already holds this class: only its delta is rewritten */
        const float y = eps ? (float)(1 * (1 - eps) + .5 * eps) : 1;
        const float r = y - v[c * sp];
        if (isfinite(r)) d[c * sp] = r;
        if (p->class_multipliers) d[c * sp] *= p->class_multipliers[c];
        return;
    }
    if (p->focal_loss) {
        const float pt = v[c * sp] + 0.000000000000001f;
        const float grad = -(1 - pt) * (2 * pt * logf(pt) + pt - 1);
        for (int n = 0; n < p->classes; n++) d[n * sp] = ((n == c) - v[n * sp]) * (.5f * grad);
        return;
    }
    for (int n = 0; n < p->classes; n++) {
        const float y = eps ? (float)((n == c) * (1 - eps) + .5 * eps) : (float)(n == c);
        const float r = y - v[n * sp];
        if (isfinite(r)) d[n * sp] = r;
        if (n == c && p->class_multipliers) d[n * sp] *= p->class_multipliers[c] * p->cls_normalizer;
    }
}

static float multiplier(const yolo *p, int c) { return p->class_multipliers ? p->class_multipliers[c] : 1; }

/* Boxes of one image's truth: at most max_boxes, ending at the first x == 0. */
static int truth_count(const yolo *p, const float *truth, int truth_size)
{
    int n = 0, cap = truth_size / TRUTH_FIELDS < p->max_boxes ? truth_size / TRUTH_FIELDS : p->max_boxes;
    while (n < cap && truth[n * TRUTH_FIELDS]) n++;
    return n;
}

static dn_box truth_box(const float *t) { return (dn_box){t[0], t[1], t[2], t[3]}; }

static int valid_class(const yolo *p, const float *t) { return (int)t[4] >= 0 && (int)t[4] < p->classes; }

/* Pass (a) of D5.2: objectness of every prediction, and positives above truth_thresh. */
static void prediction_pass(const head *h, sums *s, const float *truth, int nt)
{
    const yolo *p = h->p;
    const dn_layer *l = h->l;
    for (int j = 0; j < l->h; j++)
        for (int i = 0; i < l->w; i++)
            for (int a = 0; a < p->n; a++) {
                const int cell = j * l->w + i, oi = entry(h, a, cell, 4);
                const dn_box pred = predicted(h, a, j, i);
                float best_iou = 0, best_match_iou = 0;
                int best_t = 0;
                for (int t = 0; t < nt; t++) {
                    const float *tr = truth + t * TRUTH_FIELDS;
                    if (!valid_class(p, tr)) continue;
                    if (!isfinite(h->out[oi])) h->out[oi] = 0;
                    int confident = 0;
                    for (int c = 0; c < p->classes && !confident; c++)
                        confident = h->out[entry(h, a, cell, 5 + c)] > .25f;
                    const float iou = dn_box_iou(pred, truth_box(tr));
                    if (iou > best_match_iou && confident) best_match_iou = iou;
                    if (iou > best_iou) {
                        best_iou = iou;
                        best_t = t;
                    }
                }
                const float o = h->out[oi];
                s->anyobj += o;
                h->delta[oi] = p->obj_normalizer * (0 - o);
                if (best_match_iou > p->ignore_thresh) {
                    if (p->objectness_smooth) {
                        const float d = p->obj_normalizer * (best_match_iou - o);
                        if (d > h->delta[oi]) h->delta[oi] = d;
                    } else {
                        h->delta[oi] = 0;
                    }
                }
                if (best_iou > p->truth_thresh) {
                    const float *tr = truth + best_t * TRUTH_FIELDS, sq = best_iou * best_iou;
                    const int c = (int)tr[4];
                    h->delta[oi] = p->obj_normalizer * ((p->objectness_smooth ? sq : 1) - o);
                    class_delta(h, a, cell, c, NULL);
                    const float m = multiplier(p, c);
                    if (p->objectness_smooth) {
                        const int ci = entry(h, a, cell, 5 + c);
                        h->delta[ci] = m * (sq - h->out[ci]);
                    }
                    float iou, giou;
                    box_delta(h, s, truth_box(tr), a, j, i, p->iou_normalizer * m, &iou, &giou);
                }
            }
}

/* One truth-to-anchor assignment (D5.2 (b) step 4). */
static void assign(const head *h, sums *s, const float *tr, int slot, int j, int i)
{
    const yolo *p = h->p;
    const int c = (int)tr[4], cell = j * h->l->w + i, oi = entry(h, slot, cell, 4);
    const float m = multiplier(p, c);
    float iou, giou;
    box_delta(h, s, truth_box(tr), slot, j, i, p->iou_normalizer * m, &iou, &giou);
    s->iou += iou;
    s->iou_loss += 1 - iou;
    s->giou_loss += 1 - giou;
    s->obj += h->out[oi];
    const float d = m * p->obj_normalizer * (1 - h->out[oi]);
    if (!p->objectness_smooth || h->delta[oi] == 0) h->delta[oi] = d;
    class_delta(h, slot, cell, c, &s->cls);
    s->count++;
    s->class_count++;
    s->recall50 += iou > .5f;
    s->recall75 += iou > .75f;
}

/* This head's (first) anchor slot using anchor n, or -1. */
static int slot_of(const yolo *p, int n)
{
    for (int a = 0; a < p->n; a++)
        if (p->mask[a] == n) return a;
    return -1;
}

/* Pass (b) of D5.2: each truth's best anchor (over all num anchors) and, with iou_thresh < 1,
   every other anchor of this head similar enough to it. */
static void truth_pass(const head *h, sums *s, const float *truth, int nt)
{
    const yolo *p = h->p;
    const dn_layer *l = h->l;
    for (int t = 0; t < nt; t++) {
        const float *tr = truth + t * TRUTH_FIELDS;
        if (!valid_class(p, tr)) continue;
        /* a truth on the far edge (x or y = 1) or outside would index past the grid */
        int i = (int)(tr[0] * l->w), j = (int)(tr[1] * l->h);
        i = i < 0 ? 0 : i >= l->w ? l->w - 1 : i;
        j = j < 0 ? 0 : j >= l->h ? l->h - 1 : j;
        const dn_box shape = {0, 0, tr[2], tr[3]};
        float best_iou = 0;
        int best = 0;
        for (int n = 0; n < p->total; n++) {
            const dn_box anchor = {0, 0, p->anchors[2 * n] / p->net_w, p->anchors[2 * n + 1] / p->net_h};
            const float iou = dn_box_iou(anchor, shape);
            if (iou > best_iou) {
                best_iou = iou;
                best = n;
            }
        }
        const int best_slot = slot_of(p, best);
        if (best_slot >= 0) assign(h, s, tr, best_slot, j, i);
        if (p->iou_thresh >= 1) continue;
        for (int n = 0; n < p->total; n++) {
            const int a = slot_of(p, n);
            if (a < 0 || n == best) continue;
            const dn_box anchor = {0, 0, p->anchors[2 * n] / p->net_w, p->anchors[2 * n + 1] / p->net_h};
            if (dn_box_iou_kind(anchor, shape, p->iou_thresh_kind) > p->iou_thresh) assign(h, s, tr, a, j, i);
        }
    }
}

/* averages_yolo_deltas: where objectness has a delta, divide the box delta by the number
   of classes with a positive delta (the truths that accumulated into it). */
static void average_box_deltas(const head *h)
{
    const yolo *p = h->p;
    const int sp = h->spatial;
    for (int a = 0; a < p->n; a++)
        for (int cell = 0; cell < sp; cell++) {
            if (h->delta[entry(h, a, cell, 4)] == 0) continue;
            const float *dc = h->delta + entry(h, a, cell, 5);
            int k = 0;
            for (int c = 0; c < p->classes; c++) k += dc[c * sp] > 0;
            if (k == 0) continue;
            float *d = h->delta + entry(h, a, cell, 0);
            for (int e = 0; e < 4; e++) d[e * sp] /= k;
        }
}

dn_status dn_yolo_loss(dn_layer *l, float *output, float *delta, const float *truth, int truth_size, int threads)
{
    yolo *p = l->p;
    const int batch = l->batch;
    sums *per = calloc(batch, sizeof *per);
    if (!per) return dn_fail(DN_ERR_OOM, "out of memory for the [yolo] loss of layer %d", l->index);
    #pragma omp parallel for num_threads(threads > 0 ? threads : 1)
    for (int b = 0; b < batch; b++) {
        const head h = {p, l, l->w * l->h, output + (size_t)b * l->outputs, delta + (size_t)b * l->outputs};
        const float *tb = truth + (size_t)b * truth_size;
        const int nt = truth_count(p, tb, truth_size);
        memset(h.delta, 0, sizeof(float) * l->outputs);
        prediction_pass(&h, &per[b], tb, nt);
        truth_pass(&h, &per[b], tb, nt);
        if (p->iou_thresh < 1) average_box_deltas(&h);
    }
    sums s = {0};
    for (int b = 0; b < batch; b++) {
        s.iou += per[b].iou;
        s.iou_loss += per[b].iou_loss;
        s.giou_loss += per[b].giou_loss;
        s.cls += per[b].cls;
        s.obj += per[b].obj;
        s.anyobj += per[b].anyobj;
        s.count += per[b].count;
        s.class_count += per[b].class_count;
        s.recall50 += per[b].recall50;
        s.recall75 += per[b].recall75;
        s.total_bbox += per[b].total_bbox;
        s.rewritten_bbox += per[b].rewritten_bbox;
    }
    free(per);

    /* cost (D5.7): |delta|^2, split into the box entries and the rest */
    const int sp = l->w * l->h, entries = p->classes + 5;
    double all = 0, box = 0;
    for (size_t k = 0; k < (size_t)batch * l->outputs; k++) {
        const double d = delta[k];
        all += d * d;
        if ((int)(k / sp % entries) < 4) box += d * d;
    }
    const double class_loss = p->obj_normalizer * (all - box);
    const int count = s.count ? s.count : 1, class_count = s.class_count ? s.class_count : 1;
    if (p->iou_loss == MSE) {
        l->cost = all;
    } else {
        const double avg = (p->iou_loss == GIOU ? s.giou_loss : s.iou_loss) / count;
        l->cost = (s.count ? p->iou_normalizer * avg : 0) + class_loss;
    }
    dn_detection_stats *st = &p->stats;
    st->count = s.count;
    st->avg_iou = (float)(s.iou / count);
    st->avg_class = (float)(s.cls / class_count);
    st->avg_obj = (float)(s.obj / count);
    st->avg_noobj = (float)(s.anyobj / ((double)sp * p->n * batch));
    st->recall50 = (float)s.recall50 / count;
    st->recall75 = (float)s.recall75 / count;
    st->class_loss = (float)(class_loss / batch);
    st->iou_loss = (float)((all - class_loss) / batch);
    st->total_loss = (float)(all / batch);
    st->total_bbox = s.total_bbox;
    st->rewritten_bbox = s.rewritten_bbox;
    snprintf(st->line, sizeof st->line,
             "v3 (%s loss, Normalizer: (iou: %.2f, obj: %.2f, cls: %.2f) Region %d Avg (IOU: %f), count: %d, "
             "class_loss = %f, iou_loss = %f, total_loss = %f ",
             p->iou_loss == MSE ? "mse" : p->iou_loss == GIOU ? "giou" : "iou", p->iou_normalizer, p->obj_normalizer,
             p->cls_normalizer, l->index, st->avg_iou, st->count, st->class_loss, st->iou_loss, st->total_loss);
    return DN_OK;
}
