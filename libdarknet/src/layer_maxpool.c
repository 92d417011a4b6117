/* [maxpool] (spec §1.5, §3.5, §4.3), including maxpool_depth. */
#include <float.h>
#include <string.h>

#include "layer_maxpool.h"

static const char *const ignored_keys[] = {"maxpool_zero_nonmax", NULL};

static dn_status parse(dn_layer *l, dn_parse_ctx *ctx)
{
    maxpool *p = calloc(1, sizeof *p);
    if (!(l->p = p)) return dn_fail(DN_ERR_OOM, "out of memory");
    if (dn_opt_int(ctx, "antialiasing", 0)) return dn_parse_fail(ctx, "antialiasing=1 is not supported");
    dn_opt_accept(ctx, ignored_keys);
    p->depth = dn_opt_int(ctx, "maxpool_depth", 0);
    p->out_channels = dn_opt_int(ctx, "out_channels", 1);
    DN_TRY(dn_pool_parse(l, ctx, &p->win));
    if (p->depth) {
        if (p->out_channels < 1) return dn_parse_fail(ctx, "out_channels=%d must be >= 1", p->out_channels);
        if ((int64_t)l->w * l->h * p->out_channels * l->batch > DN_MAX_TENSOR)
            return dn_parse_fail(ctx, "out_channels=%d on a %d x %d input x batch %d is larger than the limit of %d "
                                 "floats", p->out_channels, l->w, l->h, l->batch, DN_MAX_TENSOR);
        l->out_w = l->w;
        l->out_h = l->h;
        l->out_c = p->out_channels;
        l->outputs = l->out_w * l->out_h * l->out_c;
    }
    if ((int64_t)l->batch * l->outputs > DN_MAX_TENSOR)
        return dn_parse_fail(ctx, "the output x batch %d is larger than the limit of %d floats", l->batch,
                             DN_MAX_TENSOR);
    if (l->train) { /* through the counted allocator (ints and floats have the same size) */
        float *argmax;
        DN_TRY(dn_alloc_floats(&argmax, (size_t)l->batch * l->outputs, "maxpool indexes"));
        p->argmax = (int *)argmax;
    }
    return DN_OK;
}

static void describe(const dn_layer *l, char *buf, size_t n)
{
    const maxpool *p = l->p;
    if (p->depth)
        snprintf(buf, n, "max-depth         %2dx%2d/%2d   %4d x%4d x%4d -> %4d x%4d x%4d %5.3f BF", p->win.size,
                 p->win.size, p->win.stride_x, l->w, l->h, l->c, l->out_w, l->out_h, l->out_c, l->bflops);
    else
        dn_pool_describe(l, &p->win, "max", buf, n);
}

static void free_maxpool(dn_layer *l)
{
    maxpool *p = l->p;
    if (p) free(p->argmax);
}

static void attrs(const dn_layer *l, dn_attrs *a)
{
    const maxpool *p = l->p;
    dn_attr_int(a, "size", p->win.size);
    dn_attr_int(a, "stride_x", p->win.stride_x);
    dn_attr_int(a, "stride_y", p->win.stride_y);
    dn_attr_int(a, "padding", p->win.padding);
    dn_attr_int(a, "maxpool_depth", p->depth);
    dn_attr_int(a, "out_channels", p->out_channels);
}

const dn_layer_ops dn_layer_maxpool = {
    .name = "maxpool", .alias = "max", .parse = parse,
    .describe = describe, .attrs = attrs, .free = free_maxpool,
};
