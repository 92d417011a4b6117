/* Non-maximum suppression with upstream's results (do_nms_sort / diounms_sort, spec D2), without
   its per-class sort of every record:
   - upstream sorts the records once per class, stably, each sort starting from the previous
     class's order. Such a chain leaves class k's order lexicographic: by the score of class k,
     then of k-1, ..., 0 (each read before its suppression: a class zeroes only its own column),
     descending, then the compacted position. The array ends in the last class's order, which is
     one sort here.
   - a record is suppressed only by an earlier kept record overlapping it, so per class only the
     records with a score that overlap another record with a score are visited, and only pairs of
     overlapping records are compared (suppress_class).
   The overlap test depends on the two boxes only, so the overlapping pairs are found once.
   NaN scores are zeroed first (upstream's sort has no defined order for them). */
#include <math.h>
#include <string.h>

#include "dn.h"
#include "iou.h"

static dn_box box_at(const float *b) { return (dn_box){b[0], b[1], b[2], b[3]}; }

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

/* Records in the order of class k's sort (see the top): scores of classes k, k-1, .., 0 descending,
   then compacted position. Valid while those columns hold their original scores. */
typedef struct order {
    const float *score; /* the original scores by class: score[c * n + record], read a class at a time */
    size_t n;
    const int *pos;     /* compacted position of each record */
} order;

static int before(const order *o, int a, int b, int k)
{
    for (int c = k; c >= 0; c--) {
        const float *col = o->score + c * o->n;
        if (col[a] > col[b]) return 1;
        if (col[b] > col[a]) return 0;
    }
    return o->pos[a] < o->pos[b];
}

/* Merge sort of v[0, n) into the order of class k; tmp holds n ints. */
static void sort_for_class(int *v, int *tmp, int n, const order *o, int k)
{
    for (int width = 1; width < n; width *= 2) {
        for (int lo = 0; lo < n; lo += 2 * width) {
            const int mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
            int i = lo, j = mid, t = lo;
            while (i < mid && j < hi) tmp[t++] = before(o, v[j], v[i], k) ? v[j++] : v[i++];
            while (i < mid) tmp[t++] = v[i++];
            while (j < hi) tmp[t++] = v[j++];
        }
        memcpy(v, tmp, sizeof(int) * n);
    }
}

/* The pairs among records rec[0, n) whose overlap exceeds thresh, as adjacency lists
   (adj[start[r] .. start[r+1]) for record r). A sweep over the boxes sorted by left edge
   visits only pairs that overlap horizontally; for thresh > 0 and boxes of positive size it
   also skips pairs whose overlap along x or y is at most 0.999 * thresh * the larger width or
   height: their IoU is below thresh (IoU <= overlap / larger size), a margin far above float
   rounding. The exact test decides every other pair. */
typedef struct overlaps {
    int *start, *adj;
} overlaps;

/* min/max as plain comparisons, which compilers vectorise (fminf/fmaxf are calls under strict NaN rules) */
#define LESSER(a, b) ((a) < (b) ? (a) : (b))
#define GREATER(a, b) ((a) > (b) ? (a) : (b))

/* Edges of the boxes in left-edge order, contiguous for the sweep. */
typedef struct sweep {
    int *rec;
    float *left, *right, *top, *bottom, *w, *h;
} sweep;

static void sweep_free(sweep *s)
{
    free(s->rec);
    free(s->left);
}

static dn_status sweep_init(const dn_detections *d, const int *rec, int n, sweep *s)
{
    int *tmp = malloc(sizeof(int) * n);
    float *neg_left = calloc((size_t)d->n, sizeof(float));
    s->rec = malloc(sizeof(int) * n);
    s->left = malloc(sizeof(float) * 6 * (size_t)n);
    if (!tmp || !neg_left || !s->rec || !s->left) {
        free(tmp);
        free(neg_left);
        return DN_ERR_OOM;
    }
    s->right = s->left + n;
    s->top = s->right + n;
    s->bottom = s->top + n;
    s->w = s->bottom + n;
    s->h = s->w + n;
    for (int p = 0; p < n; p++) {
        const float *b = d->bbox + 4 * (size_t)rec[p];
        neg_left[rec[p]] = -(b[0] - b[2] / 2);
        s->rec[p] = rec[p];
    }
    sort_desc(s->rec, tmp, n, neg_left, 1);
    for (int p = 0; p < n; p++) {
        const float *b = d->bbox + 4 * (size_t)s->rec[p];
        s->left[p] = b[0] - b[2] / 2;
        s->right[p] = b[0] + b[2] / 2;
        s->top[p] = b[1] - b[3] / 2;
        s->bottom[p] = b[1] + b[3] / 2;
        s->w[p] = b[2];
        s->h[p] = b[3];
    }
    free(tmp);
    free(neg_left);
    return DN_OK;
}

static dn_status find_overlaps(const dn_detections *d, const int *rec, int n, float thresh, int kind, float beta,
                               overlaps *g)
{
    const float exponent = kind == DN_NMS_GREEDY ? .6f : beta, margin = .999f * thresh;
    sweep s = {0};
    size_t n_pairs = 0, cap = 1024;
    int *pairs = malloc(sizeof(int) * 2 * cap);
    g->start = calloc((size_t)d->n + 1, sizeof(int));
    g->adj = NULL;
    dn_status st = pairs && g->start ? sweep_init(d, rec, n, &s) : DN_ERR_OOM;
    unsigned char *maybe = malloc(n ? n : 1);
    if (!maybe) st = DN_ERR_OOM;
    for (int p = 0; st == DN_OK && p < n; p++) {
        const dn_box a = box_at(d->bbox + 4 * (size_t)s.rec[p]);
        const float right = s.right[p], top = s.top[p], bottom = s.bottom[p], wp = s.w[p], hp = s.h[p];
        /* the prefilter needs boxes of positive size (false for NaN) */
        const int filter = thresh > 0 && wp > 0 && hp > 0;
        int end = p + 1;
        if (filter)
            while (end < n && !(right - s.left[end] < margin * wp)) end++;
        else
            while (end < n && !(thresh >= 0 && s.left[end] > right)) end++;
        /* branch-free (vectorisable) prefilter of the window, then the exact test on what passes */
        for (int q = p + 1; q < end; q++) {
            const float ow = LESSER(right, s.right[q]) - s.left[q];
            const float oh = LESSER(bottom, s.bottom[q]) - GREATER(top, s.top[q]);
            const int sized = (s.w[q] > 0) & (s.h[q] > 0);
            maybe[q] = (!(filter & sized)) | ((ow >= margin * GREATER(wp, s.w[q])) & (oh >= margin * GREATER(hp, s.h[q])));
        }
        for (int q = p + 1; q < end; q++) {
            if (!maybe[q]) continue;
            const dn_box b = box_at(d->bbox + 4 * (size_t)s.rec[q]);
            if (!(dn_box_iou(a, b) > thresh && (kind == DN_NMS_DEFAULT || dn_box_diou(a, b, exponent) > thresh)))
                continue;
            if (n_pairs == cap) {
                int *more = realloc(pairs, sizeof(int) * 4 * cap);
                if (!more) {
                    st = DN_ERR_OOM;
                    break;
                }
                pairs = more;
                cap *= 2;
            }
            pairs[2 * n_pairs] = s.rec[p];
            pairs[2 * n_pairs++ + 1] = s.rec[q];
        }
    }
    free(maybe);
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
    sweep_free(&s);
    free(pairs);
    return st == DN_OK ? DN_OK : dn_fail(DN_ERR_OOM, "out of memory in NMS (%zu overlapping pairs)", n_pairs);
}

/* Per-record state of one class's suppression (stamp: the class it belongs to). */
typedef struct visit {
    int stamp, state, next; /* state: 0 open, 1 kept, 2 suppressed; next: adjacency cursor */
} visit;

/* Class k. Upstream visits the records in class k's order; one still scoring zeroes every later
   one it overlaps. So a record with a score is kept iff no earlier overlapping record with a
   score is kept: decided here depth-first over the overlap graph, earlier neighbours first
   (the order is a strict total order, so this ends), without sorting the class. Zeroes are
   written at the end: the order reads this class's original scores. */
static void suppress_class(dn_detections *d, const overlaps *g, const int *linked, int n_linked, const order *o,
                           int k, visit *v, int *stack, int *zeroed)
{
    const float *score = o->score + k * o->n;
    int n_zeroed = 0;
    for (int s = 0; s < n_linked; s++) {
        if (score[linked[s]] == 0 || v[linked[s]].stamp == k) continue;
        int top = 0;
        stack[top++] = linked[s];
        v[linked[s]] = (visit){k, 0, g->start[linked[s]]};
        while (top) {
            const int j = stack[top - 1];
            visit *vj = &v[j];
            int pushed = 0;
            for (; vj->next < g->start[j + 1] && !pushed; vj->next++) {
                const int i = g->adj[vj->next];
                if (score[i] == 0 || !before(o, i, j, k)) continue;
                if (v[i].stamp != k) {
                    v[i] = (visit){k, 0, g->start[i]};
                    stack[top++] = i;
                    pushed = 1;
                    vj->next--; /* look at i again once it is decided */
                } else if (v[i].state == 1) {
                    vj->state = 2; /* final: the other neighbours no longer matter */
                    break;
                }
            }
            if (pushed) continue;
            if (vj->state == 0) vj->state = 1;
            else zeroed[n_zeroed++] = j;
            top--;
        }
    }
    for (int z = 0; z < n_zeroed; z++) d->prob[(size_t)zeroed[z] * d->classes + k] = 0;
}

dn_status dn_nms(dn_detections *d, float thresh, int kind, float beta)
{
    if (!d) return dn_fail(DN_ERR_SHAPE, "dn_nms: NULL detections");
    if (kind < DN_NMS_DEFAULT || kind > DN_NMS_DIOU)
        return dn_fail(DN_ERR_SHAPE, "unknown NMS kind %d; use 0 (default), 1 (greedynms) or 2 (diounms)", kind);
    if (d->n == 0) return DN_OK;
    const int n = d->n, C = d->classes;
    for (size_t i = 0; i < (size_t)n * C; i++)
        if (isnan(d->prob[i])) d->prob[i] = 0;
    int *ord = malloc(sizeof(int) * n), *tmp = malloc(sizeof(int) * n), *stack = malloc(sizeof(int) * n);
    int *pos = malloc(sizeof(int) * n), *linked = malloc(sizeof(int) * n), *zeroed = malloc(sizeof(int) * n);
    visit *v = malloc(sizeof(visit) * n);
    float *score = malloc(sizeof(float) * n * (C ? C : 1));
    overlaps g = {NULL, NULL};
    dn_status st = ord && tmp && stack && pos && linked && zeroed && v && score ? DN_OK
                                                                        : dn_fail(DN_ERR_OOM, "out of memory in NMS");
    if (st == DN_OK) {
        for (int i = 0; i < n; i++) ord[i] = i;
        /* records with objectness 0 go to the end, by upstream's swap-with-tail scan */
        int last = n - 1;
        for (int i = 0; i <= last; i++)
            if (d->objectness[ord[i]] == 0) {
                const int t = ord[i];
                ord[i--] = ord[last];
                ord[last--] = t;
            }
        const int total = last + 1;
        for (int i = 0; i < n; i++) {
            pos[ord[i]] = i;
            v[i].stamp = -1;
        }
        st = find_overlaps(d, ord, total, thresh, kind, beta, &g);
        if (st == DN_OK) {
            for (int r = 0; r < n; r++)
                for (int c = 0; c < C; c++) score[(size_t)c * n + r] = d->prob[(size_t)r * C + c];
            const order o = {score, (size_t)n, pos};
            int n_linked = 0;
            for (int i = 0; i < total; i++)
                if (g.start[ord[i] + 1] > g.start[ord[i]]) linked[n_linked++] = ord[i];
            /* the final order first, while every column is intact; then the classes from the last, so
               the earlier columns class k's order reads are still intact too */
            sort_for_class(ord, tmp, total, &o, C - 1);
            for (int k = C - 1; k >= 0; k--) suppress_class(d, &g, linked, n_linked, &o, k, v, stack, zeroed);
            st = permute(d, ord);
        }
    }
    free(ord);
    free(tmp);
    free(stack);
    free(pos);
    free(linked);
    free(zeroed);
    free(v);
    free(score);
    free(g.start);
    free(g.adj);
    return st;
}
