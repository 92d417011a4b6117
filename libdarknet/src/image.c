/* darknet's resize_image (spec §5.2), bit for bit. */
#include "dn.h"

dn_status dn_resize_image_window(const float *src, int c, int h, int w, float *dst, int oh, int ow, int x0, int y0,
                                 int cw, int ch)
{
    if (c < 1 || h < 1 || w < 1 || oh < 1 || ow < 1)
        return dn_fail(DN_ERR_SHAPE, "cannot resize a %d x %d x %d image to %d x %d", c, h, w, ow, oh);
    if (x0 < 0 || y0 < 0 || cw < 1 || ch < 1 || x0 + (long)cw > ow || y0 + (long)ch > oh)
        return dn_fail(DN_ERR_SHAPE, "window %d x %d at (%d, %d) is not inside the %d x %d resize", cw, ch, x0, y0,
                       ow, oh);
    /* horizontal pass over every source row, for the window's columns only */
    float *part = dn_floats((size_t)c * h * cw);
    if (!part) return dn_fail(DN_ERR_OOM, "out of memory resizing an image");
    const float w_scale = (float)(w - 1) / (ow - 1), h_scale = (float)(h - 1) / (oh - 1);
    for (int k = 0; k < c; k++)
        for (int r = 0; r < h; r++) {
            const float *row = src + ((long)k * h + r) * w;
            float *out = part + ((long)k * h + r) * cw;
            for (int x = x0; x < x0 + cw; x++) {
                if (x == ow - 1 || w == 1) {
                    out[x - x0] = row[w - 1];
                } else {
                    float sx = x * w_scale;
                    int ix = (int)sx;
                    float dx = sx - ix;
                    /* ix + 1 stays inside the row: sx can round up to w - 1 only with dx == 0 */
                    out[x - x0] = ix + 1 < w ? (1 - dx) * row[ix] + dx * row[ix + 1] : row[ix];
                }
            }
        }
    for (int k = 0; k < c; k++)
        for (int r = y0; r < y0 + ch; r++) {
            float sy = oh == 1 ? 0 : r * h_scale;
            int iy = (int)sy;
            float dy = sy - iy;
            const float *p0 = part + ((long)k * h + iy) * cw;
            float *out = dst + ((long)k * ch + r - y0) * cw;
            for (int x = 0; x < cw; x++) out[x] = (1 - dy) * p0[x];
            /* upstream skips the second tap on the last row (the last-row quirk) */
            if (r == oh - 1 || h == 1 || iy + 1 >= h) continue;
            for (int x = 0; x < cw; x++) out[x] += dy * p0[x + cw];
        }
    free(part);
    return DN_OK;
}

dn_status dn_resize_image(const float *src, int c, int h, int w, float *dst, int oh, int ow)
{
    return dn_resize_image_window(src, c, h, w, dst, oh, ow, 0, 0, ow, oh);
}
