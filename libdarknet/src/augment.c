/* darknet's classification augmentation (spec §5.5) of one decoded image, from its random draws
   to the network's input: the rotated, scaled, shifted crop, the flip, the HSV jitter and the
   resize, so that a loader thread spends microseconds per image and never holds the GIL. */
#include <math.h>
#include <string.h>
#include "dn.h"

/* The RGB value of the 8-bit BGR image at source point (sx, sy) (pixel centres on integers),
   bilinear over the four neighbours, each neighbour outside the image counting as 0. */
static void sample(const uint8_t *bgr, int h, int w, double sx, double sy, float rgb[3])
{
    float b = 0, g = 0, r = 0;
    if (!(sx > -1 && sy > -1 && sx < w && sy < h)) { /* no neighbour inside (or NaN) */
        rgb[0] = rgb[1] = rgb[2] = 0;
        return;
    }
    const long x0 = (long)(sx + 1) - 1, y0 = (long)(sy + 1) - 1; /* floor, by truncation of a positive */
    const float fx = (float)(sx - x0), fy = (float)(sy - y0);
    if (x0 >= 0 && y0 >= 0 && x0 + 1 < w && y0 + 1 < h) { /* all four inside: the common case */
        const uint8_t *p = bgr + (y0 * w + x0) * 3, *q = p + (long)w * 3;
        const float w00 = (1 - fx) * (1 - fy), w01 = fx * (1 - fy), w10 = (1 - fx) * fy, w11 = fx * fy;
        b = w00 * p[0] + w01 * p[3] + w10 * q[0] + w11 * q[3];
        g = w00 * p[1] + w01 * p[4] + w10 * q[1] + w11 * q[4];
        r = w00 * p[2] + w01 * p[5] + w10 * q[2] + w11 * q[5];
    } else { /* on the border: the neighbours outside are 0 */
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

/* Written with selects only, so that the compiler vectorises it. */
void dn_hsv_jitter(float *rgb, size_t n, float dhue, float dsat, float dexp)
{
    float *red = rgb, *green = rgb + n, *blue = rgb + 2 * n;
    for (size_t i = 0; i < n; i++) {
        const float r = red[i], g = green[i], b = blue[i];
        const float hi = r > g ? r : g, lo = r < g ? r : g;
        const float max = hi > b ? hi : b, min = lo < b ? lo : b, delta = max - min;
        const float inv = delta > 0 ? 1 / delta : 0;
        float h6 = max == r ? (g - b) * inv : max == g ? 2 + (b - r) * inv : 4 + (r - g) * inv;
        h6 = h6 < 0 ? h6 + 6 : h6;
        float hue = h6 / 6 + dhue;
        hue = hue > 1 ? hue - 1 : hue < 0 ? hue + 1 : hue;
        const float sat = (max > 0 ? delta / max : 0) * dsat, val = max * dexp;
        h6 = hue * 6;
        h6 = h6 >= 6 ? h6 - 6 : h6 >= 0 ? h6 : 0; /* 1 after the wrap; a jitter beyond a full turn */
        h6 = h6 < 6 ? h6 : 0;
        const int sector = (int)h6;
        const float f = h6 - (float)sector;
        const float p = val * (1 - sat), q = val * (1 - sat * f), t = val * (1 - sat * (1 - f));
        /* sector: 0 (v, t, p), 1 (q, v, p), 2 (p, v, t), 3 (p, q, v), 4 (t, p, v), 5 (v, p, q) */
        float ro = sector == 0 || sector == 5 ? val : sector == 1 ? q : sector == 4 ? t : p;
        float go = sector == 1 || sector == 2 ? val : sector == 0 ? t : sector == 3 ? q : p;
        float bo = sector == 3 || sector == 4 ? val : sector == 2 ? t : sector == 5 ? q : p;
        ro = sat != 0 ? ro : val;
        go = sat != 0 ? go : val;
        bo = sat != 0 ? bo : val;
        red[i] = ro < 0 ? 0 : ro > 1 ? 1 : ro;
        green[i] = go < 0 ? 0 : go > 1 ? 1 : go;
        blue[i] = bo < 0 ? 0 : bo > 1 ? 1 : bo;
    }
}

/* rand_scale from two draws: U(1, s) (or U(s, 1)) from u, inverted when invert < 1/2. */
static double scale_of(double s, double u, double invert)
{
    const double lo = s >= 1 ? 1 : s, hi = s >= 1 ? s : 1;
    const double v = lo + (hi - lo) * u;
    return invert < 0.5 ? 1 / v : v;
}

/* The crop through the affine map m (output pixel -> source point), flipped and jittered, into dst (3, size, size). */
static dn_status augment_crop(const uint8_t *bgr, int h, int w, const double m[6], int flip, float dhue,
                              float dsat, float dexp, float *dst, int size)
{
    if (h < 1 || w < 1 || size < 1)
        return dn_fail(DN_ERR_SHAPE, "cannot crop %d x %d out of a %d x %d image", size, size, w, h);
    const size_t plane = (size_t)size * size;
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            const int xs = flip ? size - 1 - x : x; /* the mirror of the crop */
            float rgb[3];
            sample(bgr, h, w, m[0] * xs + m[1] * y + m[2], m[3] * xs + m[4] * y + m[5], rgb);
            for (int k = 0; k < 3; k++) dst[k * plane + (size_t)y * size + x] = rgb[k];
        }
    if (dhue != 0 || dsat != 1 || dexp != 1) dn_hsv_jitter(dst, plane, dhue, dsat, dexp);
    return DN_OK;
}

dn_status dn_augment_classifier(const uint8_t *bgr, int h, int w, const dn_crop_augment *aug,
                                const double u[DN_AUGMENT_DRAWS], float *dst)
{
    if (aug->width < 1 || aug->height < 1 || aug->aspect <= 0)
        return dn_fail(DN_ERR_SHAPE, "augmentation to a %d x %d input with aspect %g is impossible", aug->width,
                       aug->height, aug->aspect);
    const int size = aug->width > aug->height ? aug->width : aug->height;
    const double a = scale_of(aug->aspect, u[0], u[1]);
    const int lo = aug->min_crop < aug->max_crop ? aug->min_crop : aug->max_crop;
    const int hi = aug->min_crop < aug->max_crop ? aug->max_crop : aug->min_crop;
    const int r = lo + (int)fmin(u[2] * (hi - lo + 1), hi - lo);
    const double shorter = fmin(h, w * a);
    const double sigma = r / (shorter >= 1 ? floor(shorter) : 1);
    const double theta = aug->angle * (2 * u[3] - 1) * (M_PI / 180);
    const double dx = fmax(0, (w * sigma / a - size) / 2) * (2 * u[4] - 1);
    const double dy = fmax(0, (h * sigma - size) / 2) * (2 * u[5] - 1);
    /* output pixel (x, y) -> source R(theta) . (a (x - S/2 + dx) / sigma, (y - S/2 + dy) / sigma) + (W/2, H/2) */
    const double c = cos(theta), s = sin(theta), sx = a / sigma, sy = 1 / sigma;
    const double ox = dx - size / 2.0, oy = dy - size / 2.0;
    const double m[6] = {c * sx, -s * sy, c * sx * ox - s * sy * oy + w / 2.0,
                         s * sx, c * sy, s * sx * ox + c * sy * oy + h / 2.0};
    const int flip = aug->flip && u[6] < 0.5;
    const float dhue = (float)(aug->hue * (2 * u[7] - 1));
    const float dsat = (float)scale_of(aug->saturation, u[8], u[9]);
    const float dexp = (float)scale_of(aug->exposure, u[10], u[11]);
    if (size == aug->width && size == aug->height) return augment_crop(bgr, h, w, m, flip, dhue, dsat, dexp, dst, size);
    float *square = dn_floats((size_t)3 * size * size);
    if (!square) return dn_fail(DN_ERR_OOM, "out of memory augmenting a %d x %d crop", size, size);
    dn_status st = augment_crop(bgr, h, w, m, flip, dhue, dsat, dexp, square, size);
    if (st == DN_OK) st = dn_resize_image(square, 3, size, size, dst, aug->height, aug->width);
    free(square);
    return st;
}
