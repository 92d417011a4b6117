/* The memory plan of an inference network: layer outputs live in one arena, and an output
   whose last reader has run gives its place to later outputs (liveness). Kept outputs
   (detection heads, the network's output, the last layer, those the user asked for) live to
   the end of the pass. Each layer's workspace lives there too, alive while the layer runs, and
   sized within the room the outputs alive beside it leave (fit_workspaces).
   A training network keeps every output: backward reads them all.

   A batch that runs image by image (dn_plan_image_by_image) needs room for one image's
   outputs that are not kept (and workspaces), and the whole batch's kept ones.

   Routes copy nothing where every layer sees one image on the CPU (share_blocks): the inputs of
   a concatenation write straight into its slices, and a route of one input is a view of it; a
   layer whose kernel can write over its input (2x2 maxpool) takes the input's block where
   nothing reads that later. */
#include <string.h>

#include "dn.h"
#include "layer_route.h"

/* Offsets are in floats per sample, rounded up to a cache line, and scaled by the batch:
   the plan is the same for every batch size. */
#define ALIGN_FLOATS 16

typedef struct block {
    size_t size, off;  /* floats per sample */
    int first, last;   /* the layers that write and last read it (inclusive) */
    int placed;
    int tied, next;    /* placed with the first block of its group (outputs over their inputs), at its offset;
                          the group's next block (0: none) */
} block;

static int overlaps(const block *a, const block *b) { return a->first <= b->last && b->first <= a->last; }

/* The lowest offset at which b and its group fit beside the placed blocks alive at the same time. */
static size_t lowest_fit(const block *blocks, int n, const block *b)
{
    size_t off = 0;
    for (int moved = 1; moved;) { /* a few passes: the placed blocks are not sorted by offset */
        moved = 0;
        for (const block *m = b; m; m = m->next ? &blocks[m->next] : NULL)
            for (int i = 0; i < n; i++) {
                const block *o = &blocks[i];
                if (!o->placed || !overlaps(o, m) || off >= o->off + o->size || o->off >= off + m->size) continue;
                off = o->off + o->size;
                moved = 1;
            }
    }
    return off;
}

static int kept(const dn_network *net, int i)
{
    return net->keep_all || (net->keep && net->keep[i]) || i == net->n - 1 || i == dn_network_output_layer(net) ||
           (dn_layer_caps(net->layers[i].kind) & DN_CAP_DETECTION);
}

/* Whether no output held in block h by the layers before `upto` is kept. */
static int unkept(const dn_network *net, const int *home, int upto, int h)
{
    for (int j = 0; j < upto; j++)
        if (home[j] == h && kept(net, j)) return 0;
    return 1;
}

/* Whether layer i may write its output over its input's block: its kernel can, the input starts
   the block, nothing in the block is kept, and no later layer reads what it holds but i's own. */
static int overlays(const dn_network *net, const int *home, const size_t *at, int i)
{
    const dn_layer *l = &net->layers[i];
    const dn_kernels *k = net->ctx.backend->kernels[l->kind];
    if (!k->overlays_input || l->n_in != 1 || l->in_idx[0] < 0 || at[l->in_idx[0]] || kept(net, i) ||
        !k->overlays_input(l))
        return 0;
    const int h = home[l->in_idx[0]];
    if (!unkept(net, home, i, h)) return 0;
    for (int j = i + 1; j < net->n; j++)
        for (int e = 0; e < net->layers[j].n_in; e++) {
            const int t = net->layers[j].in_idx[e];
            if (t >= 0 && t < i && home[t] == h) return 0;
        }
    return 1;
}

/* Whether block h is in a group (tie): tied to one, or one the layers before `upto` tied to. */
static int grouped(const int *tie, int upto, int h)
{
    for (int j = 0; j < upto; j++)
        if (tie[j] == h) return 1;
    return tie[h] >= 0;
}

/* home[i]: the layer whose block holds layer i's output, at[i] floats (per image) into it.
   Routes share blocks only where each image's outputs are contiguous and alone (one image at
   a time, on the host), when they are not kept and no in-place layer follows them (it would
   write into their inputs). A concatenation (groups=1) takes in as its slice each input that
   fills a block of its own, not kept, with all that block holds (in-place layers, views, an
   inner concatenation); a route of one input views its group of the input. A route's inputs
   are layers, never the network input. An overlaying layer (overlays) has a block of its own
   at its input's offset: tie[i], its input's block (else -1); routes leave those groups alone. */
static void share_blocks(const dn_network *net, int *home, size_t *at, int *tie)
{
    const int one_image = dn_plan_image_by_image(net) || net->info.batch == 1;
    const int allowed = one_image && !net->info.train && !net->ctx.backend->device_copies;
    for (int i = 0; i < net->n; i++) {
        const dn_layer *l = &net->layers[i];
        home[i] = l->ops->in_place ? home[i - 1] : i;
        at[i] = l->ops->in_place ? at[i - 1] : 0;
        tie[i] = allowed && overlays(net, home, at, i) ? home[l->in_idx[0]] : -1;
        if (!allowed || l->kind != DN_KIND_route || kept(net, i) ||
            (i + 1 < net->n && net->layers[i + 1].ops->in_place))
            continue;
        const route *p = l->p;
        if (l->n_in == 1) {
            const int s = l->in_idx[0];
            if (!unkept(net, home, i, home[s]) || grouped(tie, i, home[s])) continue;
            home[i] = home[s];
            at[i] = at[s] + (size_t)p->group_id * (net->layers[s].outputs / p->groups);
            continue;
        }
        size_t off = 0;
        for (int k = 0; k < l->n_in && p->groups == 1; k++) {
            const int s = l->in_idx[k], h = home[s];
            if (h != i && !at[s] && net->layers[h].outputs == net->layers[s].outputs && unkept(net, home, i, h) &&
                !grouped(tie, i, h))
                for (int j = 0; j < i; j++) /* the block and all it holds move into this one */
                    if (home[j] == h) {
                        home[j] = i;
                        at[j] += off;
                    }
            off += net->layers[s].outputs;
        }
    }
}

/* Floats (per sample) of the outputs alive at layer i; image by image, those of one image. */
static size_t live_at(const block *blocks, int n, int i, int by_image)
{
    size_t floats = 0;
    for (int j = 0; j < n; j++)
        if (blocks[j].size && blocks[j].first <= i && i <= blocks[j].last && !(by_image && blocks[j].last == n) &&
            !(blocks[j].tied && blocks[j].first == i)) /* written over its input, alive here too */
            floats += blocks[j].size;
    return floats;
}

/* Each layer's workspace, asked of its kernel within the room the outputs alive beside it leave
   below the outputs' peak: a kernel that can make do with less (Winograd in strips of fewer tile
   rows) does not raise the arena above what the outputs need. */
static void fit_workspaces(dn_network *net, block *blocks, int by_image, size_t scale)
{
    const int n = net->n;
    size_t peak = 0;
    for (int i = 0; i < n; i++) {
        const size_t live = live_at(blocks, n, i, by_image);
        if (live > peak) peak = live;
    }
    for (int i = 0; i < n; i++) {
        dn_layer *l = &net->layers[i];
        const dn_kernels *k = net->ctx.backend->kernels[l->kind];
        const size_t room = scale * (peak - live_at(blocks, n, i, by_image));
        if (k->workspace) l->scratch.n = k->workspace(l, net->info.train, room);
        /* per image, as the outputs: a batch's share of the workspace, unless it runs image by image */
        const size_t ws = (l->scratch.n + scale - 1) / scale;
        blocks[n + i] = (block){(ws + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS, 0, i, i, 0};
    }
}

/* Greedy by size: the largest blocks take the low offsets, the small ones fill the gaps; the
   outputs first, then the workspaces in what they leave, or (mixed) all together. Image by
   image, kept blocks are placed apart (they hold every image). The floats per sample it takes;
   apart, *outputs (or NULL) those the outputs take. */
static size_t place(block *blocks, int n, int by_image, int mixed, size_t *outputs)
{
    for (int i = 0; i < 2 * n; i++) blocks[i].placed = 0;
    size_t total = 0;
    for (int phase = 0; phase < 2 - mixed; phase++) {
        if (phase && outputs) *outputs = total;
        const int first = mixed ? 0 : phase * n, end = mixed ? 2 * n : (phase + 1) * n;
        for (;;) {
            block *big = NULL;
            for (int i = first; i < end; i++)
                if (!blocks[i].placed && blocks[i].size && !blocks[i].tied && (!big || blocks[i].size > big->size) &&
                    !(by_image && blocks[i].last == n))
                    big = &blocks[i];
            if (!big) break;
            const size_t off = lowest_fit(blocks, 2 * n, big);
            for (block *m = big; m; m = m->next ? &blocks[m->next] : NULL) {
                m->off = off;
                m->placed = 1;
                if (off + m->size > total) total = off + m->size;
            }
        }
    }
    return total;
}

dn_status dn_plan_outputs(dn_network *net)
{
    const int n = net->n;
    const int by_image = dn_plan_image_by_image(net);
    const size_t batch = (size_t)net->info.batch, scale = by_image ? 1 : batch; /* arena floats per planned one */
    block *blocks = calloc(2 * (size_t)n, sizeof *blocks); /* outputs, then workspaces */
    int *home = malloc(sizeof *home * n), *tie = malloc(sizeof *tie * n);
    size_t *at = malloc(sizeof *at * n);
    if (!blocks || !home || !tie || !at) {
        free(blocks);
        free(home);
        free(tie);
        free(at);
        return dn_fail(DN_ERR_OOM, "out of memory planning %s", net->cfg_path);
    }
    share_blocks(net, home, at, tie);
    for (int i = 0; i < n; i++) {
        const dn_layer *l = &net->layers[i];
        block *b = &blocks[home[i]];
        if (!b->size) { /* its first writer */
            b->size = ((size_t)net->layers[home[i]].outputs + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
            b->first = i;
        }
        if (kept(net, i)) b->last = n;
        else if (b->last < i) b->last = i; /* an in-place layer writes its root's buffer */
        for (int k = 0; k < l->n_in; k++)
            if (l->in_idx[k] >= 0 && blocks[home[l->in_idx[k]]].last < i) blocks[home[l->in_idx[k]]].last = i;
    }
    for (int i = 0; i < n; i++)
        if (tie[i] >= 0) { /* the end of its input's group */
            block *m = &blocks[tie[i]];
            while (m->next) m = &blocks[m->next];
            m->next = i;
            blocks[i].tied = 1;
        }
    fit_workspaces(net, blocks, by_image, scale);
    size_t outputs; /* what the outputs alone take: the rest of the arena counts as workspace */
    const size_t apart = place(blocks, n, by_image, 0, &outputs);
    size_t total = place(blocks, n, by_image, 1, NULL); /* the tighter of the two orders */
    if (total >= apart) total = place(blocks, n, by_image, 0, NULL);
    net->arena_scratch = scale * (total > outputs ? total - outputs : 0);
    /* floats from a block's offset to its next image (0: one slot that every image reuses) */
    size_t kept_floats = 0;
    if (by_image) {
        for (int i = 0; i < n; i++)
            if (blocks[i].last == n && blocks[i].size) {
                blocks[i].off = total + kept_floats;
                kept_floats += batch * blocks[i].size;
            }
    } else {
        total *= batch;
    }
    const dn_backend *be = net->ctx.backend;
    be->release(&net->arena);
    dn_status st = be->alloc(&net->arena, total + kept_floats + ALIGN_FLOATS, "layer outputs");
    /* the blocks' offsets are multiples of ALIGN_FLOATS from a cache-line boundary (calloc gives
       large arrays 16 bytes past a page boundary) */
    const size_t base =
        st == DN_OK ? (ALIGN_FLOATS - (uintptr_t)net->arena.data / sizeof(float) % ALIGN_FLOATS) % ALIGN_FLOATS : 0;
    for (int i = 0; st == DN_OK && i < n; i++) {
        dn_layer *l = &net->layers[i];
        const block *b = &blocks[home[i]];
        l->output_kept = b->last == n;
        const size_t images = by_image && !l->output_kept ? 1 : batch;
        const size_t off = (by_image ? b->off : batch * b->off) + at[i]; /* at: only where one image is seen */
        l->output = (dn_tensor){net->arena.data + base + off, images * l->outputs, net->arena.device};
        if (l->scratch.n)
            l->scratch = (dn_tensor){net->arena.data + base + scale * blocks[n + i].off, l->scratch.n, net->arena.device};
    }
    free(blocks);
    free(home);
    free(tie);
    free(at);
    return st;
}

int dn_plan_image_by_image(const dn_network *net)
{
    const dn_backend *b = net->ctx.backend;
    if (net->info.train || net->info.batch < 2 || b->device_copies) return 0;
    for (int i = 0; i < net->n; i++)
        if (b->kernels[net->layers[i].kind]->whole_batch) return 0;
    return 1;
}
