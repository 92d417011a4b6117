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

/* IoU - (centre distance^2 / enclosing diagonal^2)^beta (upstream's box_diou has beta 0.6),
   given v = IoU(a, b). */
static float diou(const float *a, const float *b, float v, float beta)
{
    const float left = fminf(a[0] - a[2] / 2, b[0] - b[2] / 2), right = fmaxf(a[0] + a[2] / 2, b[0] + b[2] / 2);
    const float top = fminf(a[1] - a[3] / 2, b[1] - b[3] / 2), bot = fmaxf(a[1] + a[3] / 2, b[1] + b[3] / 2);
    const float cw = right - left, ch = bot - top, c = cw * cw + ch * ch;
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

/* The pairs among records rec[0, n) whose overlap exceeds thresh, as adjacency lists
   (adj[start[r] .. start[r+1]) for record r). The test depends on the two boxes only, not on
   the class, and is symmetric, so it is done once for all classes; a sweep over the boxes sorted
   by left edge skips pairs that do not overlap horizontally (IoU 0, never above a thresh >= 0). */
typedef struct overlaps {
    int *start, *adj;
} overlaps;

static dn_status find_overlaps(const dn_detections *d, const int *rec, int n, float thresh, int kind, float beta,
                               overlaps *g)
{
    const float exponent = kind == DN_NMS_GREEDY ? .6f : beta;
    int *byx = malloc(sizeof(int) * n), *tmp = malloc(sizeof(int) * n);
    float *neg_left = calloc((size_t)d->n, sizeof(float));
    size_t n_pairs = 0, cap = 1024;
    int *pairs = malloc(sizeof(int) * 2 * cap);
    g->start = calloc((size_t)d->n + 1, sizeof(int));
    g->adj = NULL;
    dn_status st = byx && tmp && neg_left && pairs && g->start ? DN_OK : DN_ERR_OOM;
    if (st == DN_OK) {
        for (int p = 0; p < n; p++) {
            const float *b = d->bbox + 4 * (size_t)rec[p];
            neg_left[rec[p]] = -(b[0] - b[2] / 2);
            byx[p] = rec[p];
        }
        sort_desc(byx, tmp, n, neg_left, 1);
    }
    for (int p = 0; st == DN_OK && p < n; p++) {
        const float *a = d->bbox + 4 * (size_t)byx[p];
        const float right = a[0] + a[2] / 2;
        for (int q = p + 1; q < n; q++) {
            const float *b = d->bbox + 4 * (size_t)byx[q];
            if (thresh >= 0 && b[0] - b[2] / 2 > right) break;
            const float v = iou(a, b);
            if (!(v > thresh && (kind == DN_NMS_DEFAULT || diou(a, b, v, exponent) > thresh))) continue;
            if (n_pairs == cap) {
                int *more = realloc(pairs, sizeof(int) * 4 * cap);
                if (!more) {
                    st = DN_ERR_OOM;
                    break;
                }
                pairs = more;
                cap *= 2;
            }
            pairs[2 * n_pairs] = byx[p];
            pairs[2 * n_pairs++ + 1] = byx[q];
        }
    }
    if (st == DN_OK && !(g->adj = malloc(sizeof(int) * (2 * n_pairs + 1)))) st = DN_ERR_OOM;
    if (st == DN_OK) {
        for (size_t e = 0; e < 2 * n_pairs; e++) g->start[pairs[e] + 1]++;
        for (int r = 0; r < d->n; r++) g->start[r + 1] += g->start[r];
        for (size_t e = 0; e < n_pairs; e++) {
            const int a = pairs[2 * e], b = pairs[2 * e + 1];
            g->adj[g->start[a]++] = b;
            g->adj[g->start[b]++] = a;
        }
        for (int r = d->n; r > 0; r--) g->start[r] = g->start[r - 1]; /* undo the fill's advance */
        g->start[0] = 0;
    }
    free(byx);
    free(tmp);
    free(neg_left);
    free(pairs);
    return st == DN_OK ? DN_OK : dn_fail(DN_ERR_OOM, "out of memory in NMS (%zu overlapping pairs)", n_pairs);
}

dn_status dn_nms(dn_detections *d, float thresh, int kind, float beta)
{
    if (!d) return dn_fail(DN_ERR_SHAPE, "dn_nms: NULL detections");
    if (kind < DN_NMS_DEFAULT || kind > DN_NMS_DIOU)
        return dn_fail(DN_ERR_SHAPE, "unknown NMS kind %d; use 0 (default), 1 (greedynms) or 2 (diounms)", kind);
    if (d->n == 0) return DN_OK;
    int *ord = malloc(sizeof(int) * d->n), *tmp = malloc(sizeof(int) * d->n), *rank = malloc(sizeof(int) * d->n);
    overlaps g = {NULL, NULL};
    dn_status st = ord && tmp && rank ? DN_OK : dn_fail(DN_ERR_OOM, "out of memory in NMS");
    int total = 0;
    if (st == DN_OK) {
        for (int i = 0; i < d->n; i++) ord[i] = i;
        /* records with objectness 0 go to the end, by upstream's swap-with-tail scan */
        int last = d->n - 1;
        for (int i = 0; i <= last; i++)
            if (d->objectness[ord[i]] == 0) {
                const int t = ord[i];
                ord[i--] = ord[last];
                ord[last--] = t;
            }
        total = last + 1;
        st = find_overlaps(d, ord, total, thresh, kind, beta, &g);
    }
    const int C = d->classes;
    for (int k = 0; st == DN_OK && k < C; k++) {
        sort_desc(ord, tmp, total, d->prob + k, C);
        for (int p = 0; p < total; p++) rank[ord[p]] = p;
        /* upstream: each record still scoring, in score order, zeroes every later one it overlaps */
        for (int p = 0; p < total; p++) {
            const int i = ord[p];
            if (d->prob[(size_t)i * C + k] == 0) continue;
            for (int e = g.start[i]; e < g.start[i + 1]; e++)
                if (rank[g.adj[e]] > p) d->prob[(size_t)g.adj[e] * C + k] = 0;
        }
    }
    if (st == DN_OK) st = permute(d, ord);
    free(ord);
    free(tmp);
    free(rank);
    free(g.start);
    free(g.adj);
    return st;
}
