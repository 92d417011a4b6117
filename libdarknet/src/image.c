/* darknet's resize_image (spec §5.2), bit for bit. */
#include "dn.h"

dn_status dn_resize_image(const float *src, int c, int h, int w, float *dst, int oh, int ow)
{
    if (c < 1 || h < 1 || w < 1 || oh < 1 || ow < 1)
        return dn_fail(DN_ERR_SHAPE, "cannot resize a %d x %d x %d image to %d x %d", c, h, w, ow, oh);
    float *part = dn_floats((size_t)c * h * ow);
    if (!part) return dn_fail(DN_ERR_OOM, "out of memory resizing an image");
    const float w_scale = (float)(w - 1) / (ow - 1), h_scale = (float)(h - 1) / (oh - 1);
    for (int k = 0; k < c; k++)
        for (int r = 0; r < h; r++) {
            const float *row = src + ((long)k * h + r) * w;
            float *out = part + ((long)k * h + r) * ow;
            for (int x = 0; x < ow; x++) {
                if (x == ow - 1 || w == 1) {
                    out[x] = row[w - 1];
                } else {
                    float sx = x * w_scale;
                    int ix = (int)sx;
                    float dx = sx - ix;
                    /* ix + 1 stays inside the row: sx can round up to w - 1 only with dx == 0 */
                    out[x] = ix + 1 < w ? (1 - dx) * row[ix] + dx * row[ix + 1] : row[ix];
                }
            }
        }
    for (int k = 0; k < c; k++)
        for (int r = 0; r < oh; r++) {
            float sy = oh == 1 ? 0 : r * h_scale;
            int iy = (int)sy;
            float dy = sy - iy;
            const float *p0 = part + ((long)k * h + iy) * ow;
            float *out = dst + ((long)k * oh + r) * ow;
            for (int x = 0; x < ow; x++) out[x] = (1 - dy) * p0[x];
            /* upstream skips the second tap on the last row (the last-row quirk) */
            if (r == oh - 1 || h == 1 || iy + 1 >= h) continue;
            for (int x = 0; x < ow; x++) out[x] += dy * p0[x + ow];
        }
    free(part);
    return DN_OK;
}
