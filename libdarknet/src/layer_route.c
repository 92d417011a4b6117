/* [route] (spec §1.5, §3.9, §4.3): per sample, the concatenation of the listed
   layers' outputs in list order; with groups=g, group_id=j only the j-th of g
   contiguous slices of each listed layer's output is taken. */
#include <string.h>

#include "dn.h"

#define MAX_SOURCES 1024

typedef struct route {
    int n;              /* number of listed layers */
    int *idx;           /* their absolute indices */
    int groups, group_id;
} route;

static dn_status parse(dn_layer *l, dn_parse_ctx *ctx)
{
    route *p = calloc(1, sizeof *p);
    if (!(l->p = p)) return dn_fail(DN_ERR_OOM, "out of memory");
    const char *list = dn_opt_str(ctx, "layers", NULL);
    if (!list)
        return dn_parse_fail(ctx, "layers= is required: list the layers to concatenate, e.g. layers=-1,61 "
                             "(negative values count back from this layer)");
    int cap = 1;
    for (const char *s = list; *s; s++) cap += *s == ',';
    if (cap > MAX_SOURCES) return dn_parse_fail(ctx, "layers= lists more than %d layers", MAX_SOURCES);
    int refs[MAX_SOURCES];
    int n = dn_opt_ints(ctx, "layers", refs, cap);
    if (n < 0) return DN_ERR_CFG;
    if (n == 0) return dn_parse_fail(ctx, "layers=%s lists no layer; give at least one layer index", list);
    p->idx = malloc(sizeof *p->idx * n);
    if (!p->idx) return dn_fail(DN_ERR_OOM, "out of memory");
    p->n = n;
    for (int i = 0; i < n; i++) DN_TRY(dn_opt_layer_ref(ctx, "layers", refs[i], &p->idx[i]));

    p->groups = dn_opt_int(ctx, "groups", 1);
    p->group_id = dn_opt_int(ctx, "group_id", 0);
    if (p->groups < 1) return dn_parse_fail(ctx, "groups=%d must be >= 1", p->groups);
    if (p->group_id < 0 || p->group_id >= p->groups)
        return dn_parse_fail(ctx, "group_id=%d must be between 0 and groups-1 = %d", p->group_id, p->groups - 1);

    const dn_layer *first = &ctx->net->layers[p->idx[0]];
    long sum_c = 0, sum_out = 0;
    for (int i = 0; i < n; i++) {
        const dn_layer *s = &ctx->net->layers[p->idx[i]];
        if (s->out_w != first->out_w || s->out_h != first->out_h)
            return dn_parse_fail(ctx, "the routed layers have different widths/heights: layer %d outputs %d x %d x %d "
                                 "(w x h x c) but layer %d outputs %d x %d x %d; all layers in layers= must have the "
                                 "same width and height",
                                 p->idx[0], first->out_w, first->out_h, first->out_c, p->idx[i], s->out_w, s->out_h,
                                 s->out_c);
        if (s->outputs % p->groups || (s->out_c > 0 && s->out_c % p->groups))
            return dn_parse_fail(ctx, "groups=%d does not divide the %d channels (%d values) of layer %d", p->groups,
                                 s->out_c, s->outputs, p->idx[i]);
        sum_c += s->out_c;
        sum_out += s->outputs;
    }
    if (sum_out / p->groups > (1L << 30)) return dn_parse_fail(ctx, "the concatenation is too large");
    l->out_w = first->out_w;
    l->out_h = first->out_h;
    l->out_c = (int)(sum_c / p->groups);
    l->outputs = (int)(sum_out / p->groups);
    l->bflops = 0;
    return DN_OK;
}

static void forward(dn_layer *l, dn_network *net, const float *in)
{
    (void)in;
    const route *p = l->p;
    long offset = 0;
    for (int i = 0; i < p->n; i++) {
        const dn_layer *s = &net->layers[p->idx[i]];
        const long part = s->outputs / p->groups;
        const float *src = s->output + (long)p->group_id * part;
        #pragma omp parallel for
        for (int b = 0; b < l->batch; b++)
            memcpy(l->output + (long)b * l->outputs + offset, src + (long)b * s->outputs, sizeof(float) * part);
        offset += part;
    }
}

/* Each source's slice of delta += the matching slice of this layer's delta. */
static void backward(dn_layer *l, dn_network *net, const float *in, float *in_delta)
{
    (void)in;
    (void)in_delta; /* the previous layer only receives a gradient if it is listed */
    const route *p = l->p;
    long offset = 0;
    for (int i = 0; i < p->n; i++) {
        dn_layer *s = &net->layers[p->idx[i]];
        const long part = s->outputs / p->groups;
        if (s->delta) {
            float *dst = s->delta + (long)p->group_id * part;
            #pragma omp parallel for collapse(2)
            for (int b = 0; b < l->batch; b++)
                for (long j = 0; j < part; j++)
                    dst[(long)b * s->outputs + j] += l->delta[(long)b * l->outputs + offset + j];
        }
        offset += part;
    }
}

static void describe(const dn_layer *l, char *buf, size_t n)
{
    const route *p = l->p;
    size_t pos = 0;
    if (n) buf[0] = 0;
    dn_appendf(buf, n, &pos, "route ");
    for (int i = 0; i < p->n; i++) dn_appendf(buf, n, &pos, " %d", p->idx[i]);
    dn_appendf(buf, n, &pos, "%s", p->n > 3 ? " \t    " : p->n > 1 ? " \t            " : " \t\t            ");
    dn_appendf(buf, n, &pos, "           ");
    if (p->groups > 1) dn_appendf(buf, n, &pos, "%d/%d", p->group_id, p->groups);
    else dn_appendf(buf, n, &pos, "   ");
    dn_appendf(buf, n, &pos, " -> %4d x%4d x%4d ", l->out_w, l->out_h, l->out_c);
}

static void free_route(dn_layer *l)
{
    route *p = l->p;
    if (p) free(p->idx);
}

const dn_layer_ops dn_layer_route = {
    .name = "route", .forward = forward, .backward = backward, .parse = parse, .describe = describe,
    .free = free_route,
};
