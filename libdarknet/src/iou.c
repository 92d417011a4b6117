/* Box overlap measures and the gradient of the IoU losses (spec D2.1, D5.3),
   in float as upstream computes them. */
#include <math.h>

#include "iou.h"
#include "layer_yolo.h"

/* Length of the overlap of two segments given by centre and size (negative when apart). */
static float overlap(float x1, float w1, float x2, float w2)
{
    const float l1 = x1 - w1 / 2, l2 = x2 - w2 / 2, r1 = x1 + w1 / 2, r2 = x2 + w2 / 2;
    return (r1 < r2 ? r1 : r2) - (l1 > l2 ? l1 : l2);
}

static float intersection(dn_box a, dn_box b)
{
    const float w = overlap(a.x, a.w, b.x, b.w), h = overlap(a.y, a.h, b.y, b.h);
    return w < 0 || h < 0 ? 0 : w * h;
}

static float box_union(dn_box a, dn_box b) { return a.w * a.h + b.w * b.h - intersection(a, b); }

float dn_box_iou(dn_box a, dn_box b)
{
    const float i = intersection(a, b), u = box_union(a, b);
    return i == 0 || u == 0 ? 0 : i / u;
}

/* Width and height of the smallest box enclosing a and b. */
static void enclosing(dn_box a, dn_box b, float *w, float *h)
{
    *w = fmaxf(a.x + a.w / 2, b.x + b.w / 2) - fminf(a.x - a.w / 2, b.x - b.w / 2);
    *h = fmaxf(a.y + a.h / 2, b.y + b.h / 2) - fminf(a.y - a.h / 2, b.y - b.h / 2);
}

float dn_box_giou(dn_box a, dn_box b)
{
    float cw, ch;
    enclosing(a, b, &cw, &ch);
    const float c = cw * ch, iou = dn_box_iou(a, b);
    if (c == 0) return iou;
    return iou - (c - box_union(a, b)) / c;
}

/* Squared centre distance over squared enclosing diagonal (0 when the diagonal is 0). */
static float centre_term(dn_box a, dn_box b)
{
    float cw, ch;
    enclosing(a, b, &cw, &ch);
    const float c = cw * cw + ch * ch;
    if (c == 0) return 0;
    return ((a.x - b.x) * (a.x - b.x) + (a.y - b.y) * (a.y - b.y)) / c;
}

float dn_box_diou(dn_box a, dn_box b, float beta) { return dn_box_iou(a, b) - (float)pow(centre_term(a, b), beta); }

float dn_box_iou_kind(dn_box a, dn_box b, int kind)
{
    const float iou = dn_box_iou(a, b);
    switch (kind) {
    case GIOU: return dn_box_giou(a, b);
    case DIOU: return dn_box_diou(a, b, .6f); /* upstream's exponent */
    case CIOU: {
        const double da = atan(b.w / b.h) - atan(a.w / a.h);
        const float v = (float)(4 / (M_PI * M_PI) * da * da);
        const float alpha = (float)(v / (1 - iou + v + 0.000001));
        return iou - (centre_term(a, b) + alpha * v);
    }
    default: return iou;
    }
}

/* Derivatives w.r.t. the four edges of pred, in the order top, bottom, left, right. */
enum { T, B, L, R };

void dn_box_iou_grad(dn_box pred, dn_box truth, int kind, float g[4])
{
    /* pred edges (ordered) and truth edges */
    const float pt = fminf(pred.y - pred.h / 2, pred.y + pred.h / 2), pb = fmaxf(pred.y - pred.h / 2, pred.y + pred.h / 2);
    const float pl = fminf(pred.x - pred.w / 2, pred.x + pred.w / 2), pr = fmaxf(pred.x - pred.w / 2, pred.x + pred.w / 2);
    const float tt = truth.y - truth.h / 2, tb = truth.y + truth.h / 2;
    const float tl = truth.x - truth.w / 2, tr = truth.x + truth.w / 2;
    const float area = (pb - pt) * (pr - pl), truth_area = (tb - tt) * (tr - tl);
    const float ih = fminf(pb, tb) - fmaxf(pt, tt), iw = fminf(pr, tr) - fmaxf(pl, tl);
    const float inter = iw * ih, uni = area + truth_area - inter;
    const float cw = fmaxf(pr, tr) - fminf(pl, tl), ch = fmaxf(pb, tb) - fminf(pt, tt), c = cw * ch;
    const int apart = iw <= 0 || ih <= 0;

    /* d(area), d(intersection) (only where pred's edge is the inner one), d(union),
       d(enclosing area) (only where pred's edge is the outer one) */
    const float d_area[4] = {-(pr - pl), pr - pl, -(pb - pt), pb - pt};
    const float d_inter[4] = {pt > tt ? -iw : 0, pb < tb ? iw : 0, pl > tl ? -ih : 0, pr < tr ? ih : 0};
    const float d_enc[4] = {pt < tt ? -cw : 0, pb > tb ? cw : 0, pl < tl ? -ch : 0, pr > tr ? ch : 0};
    float p[4];
    for (int e = 0; e < 4; e++) {
        const float d_uni = d_area[e] - d_inter[e];
        p[e] = uni > 0 ? (uni * d_inter[e] - inter * d_uni) / (uni * uni) : 0;
        if (kind == GIOU) {
            const float giou_term = (c * d_uni - uni * d_enc[e]) / (c * c);
            if (c > 0) p[e] += giou_term;
            if (apart) p[e] = giou_term;
        }
    }
    g[0] = p[L] + p[R];
    g[1] = p[T] + p[B];
    g[2] = p[R] - p[L];
    g[3] = p[B] - p[T];
    if (kind != DIOU && kind != CIOU) return;

    /* distance term: S = squared centre distance, C2 = squared enclosing diagonal; the
       enclosing width moves with x by [right outer] - [left outer], with w by half of
       [right outer] + [left outer] (height likewise) */
    const float s = (pred.x - truth.x) * (pred.x - truth.x) + (pred.y - truth.y) * (pred.y - truth.y);
    const float c2 = cw * cw + ch * ch;
    const float dcw_dx = (float)(pr > tr) - (float)(pl < tl), dch_dy = (float)(pb > tb) - (float)(pt < tt);
    const float dcw_dw = (pr > tr ? .5f : 0) - (pl < tl ? -.5f : 0), dch_dh = (pb > tb ? .5f : 0) - (pt < tt ? -.5f : 0);
    float d[4] = {(2 * (truth.x - pred.x) * c2 - (2 * cw * dcw_dx) * s) / (c2 * c2),
                  (2 * (truth.y - pred.y) * c2 - (2 * ch * dch_dy) * s) / (c2 * c2),
                  (2 * cw * dcw_dw) * s / (c2 * c2), (2 * ch * dch_dh) * s / (c2 * c2)};
    if (kind == CIOU) {
        const double da = atan(truth.w / truth.h) - atan(pred.w / pred.h);
        const float v = (float)(4 / (M_PI * M_PI) * da * da);
        const float alpha = (float)(v / (1 - inter / uni + v + 0.000001));
        d[2] += alpha * (float)(8 / (M_PI * M_PI) * da * pred.h);
        d[3] += alpha * (float)(-8 / (M_PI * M_PI) * da * pred.w);
    }
    for (int k = 0; k < 4; k++) {
        if (c2 > 0) g[k] += d[k];
        if (apart) g[k] = d[k];
    }
}
