/* The per-image part of darknet's classification augmentation (spec §5.5): the rotated, scaled,
   shifted crop, the flip and the HSV jitter, in one pass from the decoded 8-bit image, so that a
   loader thread spends microseconds per image and never holds the GIL. */
#include <math.h>
#include "dn.h"

/* The RGB value of the 8-bit BGR image at source point (sx, sy) (pixel centres on integers),
   bilinear over the four neighbours, each neighbour outside the image counting as 0. */
static void sample(const uint8_t *bgr, int h, int w, float sx, float sy, float rgb[3])
{
    const float x0f = floorf(sx), y0f = floorf(sy);
    const float fx = sx - x0f, fy = sy - y0f;
    const long x0 = (long)x0f, y0 = (long)y0f;
    float b = 0, g = 0, r = 0;
    if (x0 >= 0 && y0 >= 0 && x0 + 1 < w && y0 + 1 < h) { /* all four inside: the common case */
        const uint8_t *p = bgr + (y0 * w + x0) * 3, *q = p + (long)w * 3;
        const float w00 = (1 - fx) * (1 - fy), w01 = fx * (1 - fy), w10 = (1 - fx) * fy, w11 = fx * fy;
        b = w00 * p[0] + w01 * p[3] + w10 * q[0] + w11 * q[3];
        g = w00 * p[1] + w01 * p[4] + w10 * q[1] + w11 * q[4];
        r = w00 * p[2] + w01 * p[5] + w10 * q[2] + w11 * q[5];
    } else {
        for (int dy = 0; dy < 2; dy++) {
            const long y = y0 + dy;
            if (y < 0 || y >= h) continue;
            for (int dx = 0; dx < 2; dx++) {
                const long x = x0 + dx;
                if (x < 0 || x >= w) continue;
                const float weight = (dy ? fy : 1 - fy) * (dx ? fx : 1 - fx);
                const uint8_t *p = bgr + (y * w + x) * 3;
                b += weight * p[0];
                g += weight * p[1];
                r += weight * p[2];
            }
        }
    }
    rgb[0] = r * (1.0f / 255);
    rgb[1] = g * (1.0f / 255);
    rgb[2] = b * (1.0f / 255);
}

/* darknet's HSV jitter of one RGB pixel (its HSV formulas: hue in [0, 1), shifted by dhue and
   wrapped once; saturation and value scaled), back to RGB clamped to [0, 1]. */
static void jitter(float rgb[3], float dhue, float dsat, float dexp)
{
    const float r = rgb[0], g = rgb[1], b = rgb[2];
    const float hi = r > g ? r : g, lo = r < g ? r : g;
    const float max = hi > b ? hi : b, min = lo < b ? lo : b, delta = max - min;
    float hue = 0, sat = max > 0 ? delta / max : 0, val = max;
    if (delta > 0) {
        if (max == r) hue = (g - b) / delta;
        else if (max == g) hue = 2 + (b - r) / delta;
        else hue = 4 + (r - g) / delta;
        if (hue < 0) hue += 6;
    }
    hue = hue / 6 + dhue;
    if (hue > 1) hue -= 1;
    else if (hue < 0) hue += 1;
    sat *= dsat;
    val *= dexp;
    float out[3] = {val, val, val};
    if (sat != 0) {
        float h6 = hue * 6;
        if (!(h6 >= 0 && h6 < 6)) h6 = h6 >= 6 && h6 < 12 ? h6 - 6 : 0; /* 1 after the wrap; absurd jitters */
        const int sector = (int)h6;
        const float f = h6 - sector;
        const float p = val * (1 - sat), q = val * (1 - sat * f), t = val * (1 - sat * (1 - f));
        const float table[6][3] = {{val, t, p}, {q, val, p}, {p, val, t}, {p, q, val}, {t, p, val}, {val, p, q}};
        for (int k = 0; k < 3; k++) out[k] = table[sector][k];
    }
    for (int k = 0; k < 3; k++) rgb[k] = out[k] < 0 ? 0 : out[k] > 1 ? 1 : out[k];
}

dn_status dn_augment_crop(const uint8_t *bgr, int h, int w, const float m[6], int flip, float dhue, float dsat,
                          float dexp, float *dst, int size)
{
    if (h < 1 || w < 1 || size < 1)
        return dn_fail(DN_ERR_SHAPE, "cannot crop %d x %d out of a %d x %d image", size, size, w, h);
    const int jittered = dhue != 0 || dsat != 1 || dexp != 1;
    const size_t plane = (size_t)size * size;
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            const int xs = flip ? size - 1 - x : x; /* the mirror of the crop */
            const float sx = m[0] * xs + m[1] * y + m[2], sy = m[3] * xs + m[4] * y + m[5];
            float rgb[3];
            sample(bgr, h, w, sx, sy, rgb);
            if (jittered) jitter(rgb, dhue, dsat, dexp);
            for (int k = 0; k < 3; k++) dst[k * plane + (size_t)y * size + x] = rgb[k];
        }
    return DN_OK;
}
