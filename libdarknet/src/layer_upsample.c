/* [upsample] (spec §1.5, §3.9, §4.3): nearest-neighbour up-sampling by `stride`,
   times `scale`; a negative stride -k down-samples by summing k x k blocks. */
#include "dn.h"

typedef struct upsample {
    int k;          /* |stride| */
    int down;       /* stride < 0: block sums */
    float scale;
} upsample;

static dn_status parse(dn_layer *l, dn_parse_ctx *ctx)
{
    upsample *p = calloc(1, sizeof *p);
    if (!(l->p = p)) return dn_fail(DN_ERR_OOM, "out of memory");
    DN_TRY(dn_require_image(ctx, l));
    int stride = dn_opt_int(ctx, "stride", 2);
    p->scale = dn_opt_float(ctx, "scale", 1);
    if (stride == 0)
        return dn_parse_fail(ctx, "stride=0 is invalid: use a positive factor to up-sample or a negative one to "
                             "down-sample");
    p->down = stride < 0;
    p->k = stride < 0 ? -stride : stride;
    if (p->down) {
        l->out_w = l->w / p->k;
        l->out_h = l->h / p->k;
        if (l->out_w < 1 || l->out_h < 1)
            return dn_parse_fail(ctx, "stride=%d down-samples the %d x %d input to nothing", stride, l->w, l->h);
    } else {
        if ((double)l->w * p->k * l->h * p->k * l->c > (1 << 30))
            return dn_parse_fail(ctx, "stride=%d makes the output too large", stride);
        l->out_w = l->w * p->k;
        l->out_h = l->h * p->k;
    }
    l->out_c = l->c;
    l->outputs = l->out_w * l->out_h * l->out_c;
    return DN_OK;
}

static void forward(dn_layer *l, dn_network *net, const float *in)
{
    (void)net;
    const upsample *p = l->p;
    const int k = p->k, ow = l->out_w, oh = l->out_h, w = l->w, h = l->h;
    const float scale = p->scale;
    const long planes = (long)l->batch * l->c;
    #pragma omp parallel for collapse(2)
    for (long pl = 0; pl < planes; pl++)
        for (int y = 0; y < oh; y++) {
            const float *src = in + pl * h * w;
            float *dst = l->output + pl * oh * ow + (long)y * ow;
            if (!p->down) {
                const float *row = src + (long)(y / k) * w;
                for (int x = 0; x < ow; x++) dst[x] = scale * row[x / k];
            } else {
                for (int x = 0; x < ow; x++) {
                    float sum = 0;
                    for (int dy = 0; dy < k; dy++)
                        for (int dx = 0; dx < k; dx++) sum += src[(long)(y * k + dy) * w + x * k + dx];
                    dst[x] = scale * sum;
                }
            }
        }
}

/* Up: prev.delta[y/k, x/k] += scale * delta[y, x]; down: each pixel of a block += scale * delta[block]. */
static void backward(dn_layer *l, dn_network *net, const float *in, float *in_delta)
{
    (void)net;
    (void)in;
    if (!in_delta) return;
    const upsample *p = l->p;
    const int k = p->k, ow = l->out_w, oh = l->out_h, w = l->w, h = l->h;
    const float scale = p->scale;
    const long planes = (long)l->batch * l->c;
    if (!p->down) {
        #pragma omp parallel for collapse(2)
        for (long pl = 0; pl < planes; pl++)
            for (int y = 0; y < h; y++) {
                float *dst = in_delta + pl * h * w + (long)y * w;
                const float *d = l->delta + pl * oh * ow;
                for (int x = 0; x < w; x++) {
                    float sum = 0;
                    for (int dy = 0; dy < k; dy++)
                        for (int dx = 0; dx < k; dx++) sum += d[(long)(y * k + dy) * ow + x * k + dx];
                    dst[x] += scale * sum;
                }
            }
    } else {
        #pragma omp parallel for collapse(2)
        for (long pl = 0; pl < planes; pl++)
            for (int y = 0; y < oh; y++) {
                float *dst = in_delta + pl * h * w;
                const float *d = l->delta + pl * oh * ow + (long)y * ow;
                for (int x = 0; x < ow; x++) {
                    const float v = scale * d[x];
                    for (int dy = 0; dy < k; dy++)
                        for (int dx = 0; dx < k; dx++) dst[(long)(y * k + dy) * w + x * k + dx] += v;
                }
            }
    }
}

static void describe(const dn_layer *l, char *buf, size_t n)
{
    const upsample *p = l->p;
    snprintf(buf, n, "%s%2dx  %4d x%4d x%4d -> %4d x%4d x%4d",
             p->down ? "downsample              " : "upsample                ", p->k, l->w, l->h, l->c, l->out_w,
             l->out_h, l->out_c);
}

const dn_layer_ops dn_layer_upsample = {
    .name = "upsample", .parse = parse, .forward = forward, .backward = backward, .describe = describe,
};
