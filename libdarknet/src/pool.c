/* Pooling window geometry (spec §1.5 maxpool): padding is the total padding,
   the window of output (i, j) starts at (i*stride_y - padding/2, j*stride_x - padding/2). */
#include "dn.h"

dn_status dn_pool_parse(dn_layer *l, dn_parse_ctx *ctx, dn_pool *p)
{
    DN_TRY(dn_require_image(ctx, l));
    int stride = dn_opt_int(ctx, "stride", 1);
    p->stride_x = dn_opt_int(ctx, "stride_x", stride);
    p->stride_y = dn_opt_int(ctx, "stride_y", stride);
    p->size = dn_opt_int(ctx, "size", stride);
    p->padding = dn_opt_int(ctx, "padding", p->size - 1);
    if (p->size < 1 || p->stride_x < 1 || p->stride_y < 1 || p->padding < 0)
        return dn_parse_fail(ctx, "size=%d, stride=%d/%d must be >= 1 and padding=%d >= 0", p->size, p->stride_x,
                             p->stride_y, p->padding);
    /* 64-bit: hostile sizes must reach the generic size check, not overflow here */
    const int64_t out_w = ((int64_t)l->w + p->padding - p->size) / p->stride_x + 1;
    const int64_t out_h = ((int64_t)l->h + p->padding - p->size) / p->stride_y + 1;
    if ((int64_t)l->w + p->padding < p->size || (int64_t)l->h + p->padding < p->size)
        return dn_parse_fail(ctx, "a %dx%d window does not fit the %d x %d input", p->size, p->size, l->w, l->h);
    if (out_w * out_h * l->c > DN_MAX_TENSOR)
        return dn_parse_fail(ctx, "the output %lld x %lld x %d is larger than the limit of %d floats; check size, "
                             "stride and padding", (long long)out_w, (long long)out_h, l->c, DN_MAX_TENSOR);
    l->out_w = (int)out_w;
    l->out_h = (int)out_h;
    l->out_c = l->c;
    l->outputs = l->out_w * l->out_h * l->out_c;
    l->bflops = (double)p->size * p->size * l->c * l->out_h * l->out_w / 1e9;
    return DN_OK;
}

void dn_pool_describe(const dn_layer *l, const dn_pool *p, const char *kind, char *buf, size_t n)
{
    if (p->stride_x == p->stride_y)
        snprintf(buf, n, "%s               %2dx%2d/%2d   %4d x%4d x%4d -> %4d x%4d x%4d %5.3f BF", kind, p->size,
                 p->size, p->stride_x, l->w, l->h, l->c, l->out_w, l->out_h, l->out_c, l->bflops);
    else
        snprintf(buf, n, "%s              %2dx%2d/%2dx%2d %4d x%4d x%4d -> %4d x%4d x%4d %5.3f BF", kind, p->size,
                 p->size, p->stride_x, p->stride_y, l->w, l->h, l->c, l->out_w, l->out_h, l->out_c, l->bflops);
}
