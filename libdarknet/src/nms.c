/* Non-maximum suppression as upstream's do_nms_sort / diounms_sort (spec D2).
   Sorting is stable (upstream's qsort leaves ties unspecified; glibc's merge sort
   keeps them in place, which a stable sort reproduces). */
#include <math.h>
#include <string.h>

#include "dn.h"

/* Length of the overlap of two 1-D segments given by centre and size (negative when apart). */
static float overlap(float x1, float w1, float x2, float w2)
{
    const float l1 = x1 - w1 / 2, l2 = x2 - w2 / 2, r1 = x1 + w1 / 2, r2 = x2 + w2 / 2;
    const float left = l1 > l2 ? l1 : l2, right = r1 < r2 ? r1 : r2;
    return right - left;
}

static float iou(const float *a, const float *b)
{
    const float ow = overlap(a[0], a[2], b[0], b[2]), oh = overlap(a[1], a[3], b[1], b[3]);
    if (ow < 0 || oh < 0) return 0;
    const float inter = ow * oh;
    if (inter == 0) return 0;
    const float uni = a[2] * a[3] + b[2] * b[3] - inter;
    return uni == 0 ? 0 : inter / uni;
}

/* IoU - (centre distance^2 / enclosing diagonal^2)^beta (upstream's box_diou has beta 0.6). */
static float diou(const float *a, const float *b, float beta)
{
    const float left = fminf(a[0] - a[2] / 2, b[0] - b[2] / 2), right = fmaxf(a[0] + a[2] / 2, b[0] + b[2] / 2);
    const float top = fminf(a[1] - a[3] / 2, b[1] - b[3] / 2), bot = fmaxf(a[1] + a[3] / 2, b[1] + b[3] / 2);
    const float cw = right - left, ch = bot - top, c = cw * cw + ch * ch;
    const float v = iou(a, b);
    if (c == 0) return v;
    const float d = (a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1]);
    return v - (float)pow(d / c, beta);
}

/* Stable merge sort of ord[0, n) by key[ord[i] * stride] descending; tmp holds n ints. */
static void sort_desc(int *ord, int *tmp, int n, const float *key, int stride)
{
    for (int width = 1; width < n; width *= 2) {
        for (int lo = 0; lo < n; lo += 2 * width) {
            const int mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
            int i = lo, j = mid, k = lo;
            while (i < mid && j < hi)
                tmp[k++] = key[(size_t)ord[j] * stride] > key[(size_t)ord[i] * stride] ? ord[j++] : ord[i++];
            while (i < mid) tmp[k++] = ord[i++];
            while (j < hi) tmp[k++] = ord[j++];
        }
        memcpy(ord, tmp, sizeof(int) * n);
    }
}

/* Rewrite the arrays of d in the order ord. */
static dn_status permute(dn_detections *d, const int *ord)
{
    const size_t C = d->classes, n = d->n;
    float *bbox = malloc(sizeof(float) * 4 * n), *obj = malloc(sizeof(float) * n);
    float *prob = malloc(sizeof(float) * (C ? C : 1) * n);
    if (!bbox || !obj || !prob) {
        free(bbox);
        free(obj);
        free(prob);
        return dn_fail(DN_ERR_OOM, "out of memory in NMS");
    }
    for (size_t i = 0; i < n; i++) {
        memcpy(bbox + 4 * i, d->bbox + 4 * (size_t)ord[i], sizeof(float) * 4);
        obj[i] = d->objectness[ord[i]];
        memcpy(prob + C * i, d->prob + C * (size_t)ord[i], sizeof(float) * C);
    }
    free(d->bbox);
    free(d->objectness);
    free(d->prob);
    d->bbox = bbox;
    d->objectness = obj;
    d->prob = prob;
    d->capacity = d->n;
    return DN_OK;
}

dn_status dn_nms(dn_detections *d, float thresh, int kind, float beta)
{
    if (!d) return dn_fail(DN_ERR_SHAPE, "dn_nms: NULL detections");
    if (kind < DN_NMS_DEFAULT || kind > DN_NMS_DIOU)
        return dn_fail(DN_ERR_SHAPE, "unknown NMS kind %d; use 0 (default), 1 (greedynms) or 2 (diounms)", kind);
    if (d->n == 0) return DN_OK;
    int *ord = malloc(sizeof(int) * d->n), *tmp = malloc(sizeof(int) * d->n);
    if (!ord || !tmp) {
        free(ord);
        free(tmp);
        return dn_fail(DN_ERR_OOM, "out of memory in NMS");
    }
    for (int i = 0; i < d->n; i++) ord[i] = i;
    /* records with objectness 0 go to the end, by upstream's swap-with-tail scan */
    int last = d->n - 1;
    for (int i = 0; i <= last; i++)
        if (d->objectness[ord[i]] == 0) {
            const int t = ord[i];
            ord[i--] = ord[last];
            ord[last--] = t;
        }
    const int total = last + 1, C = d->classes;
    for (int k = 0; k < C; k++) {
        sort_desc(ord, tmp, total, d->prob + k, C);
        for (int i = 0; i < total; i++) {
            if (d->prob[(size_t)ord[i] * C + k] == 0) continue;
            const float *a = d->bbox + 4 * (size_t)ord[i];
            for (int j = i + 1; j < total; j++) {
                const float *b = d->bbox + 4 * (size_t)ord[j];
                const float o = kind == DN_NMS_DEFAULT ? iou(a, b) : diou(a, b, kind == DN_NMS_GREEDY ? .6f : beta);
                if (o > thresh) d->prob[(size_t)ord[j] * C + k] = 0;
            }
        }
    }
    dn_status st = permute(d, ord);
    free(ord);
    free(tmp);
    return st;
}
