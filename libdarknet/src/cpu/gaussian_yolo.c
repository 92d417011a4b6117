/* [Gaussian_yolo] on the CPU (spec D1.4): per anchor slot the logistic on mu_x, sigma_x,
   mu_y, sigma_y, sigma_w, sigma_h, objectness and the classes (mu_w, mu_h stay raw), then
   scale_x_y on mu_x and mu_y: v <- s*v - (s-1)/2. */
#include <string.h>

#include "../layer_gaussian_yolo.h"
#include "cpu.h"

static dn_status forward(dn_layer *l, const dn_tensor *const *srcs, dn_tensor *out, dn_ctx *ctx)
{
    (void)ctx;
    const yolo *p = &((const gaussian_yolo *)l->p)->head;
    const int entries = p->classes + GAUSSIAN_BOX, spatial = l->w * l->h;
    const float s = p->scale_x_y, shift = (s - 1) / 2;
    const long planes = (long)l->batch * p->n * entries;
    #pragma omp parallel for num_threads(dn_cpu_threads())
    for (long pl = 0; pl < planes; pl++) {
        const int e = (int)(pl % entries);
        const float *src = srcs[0]->data + pl * spatial;
        float *dst = out->data + pl * spatial;
        memcpy(dst, src, sizeof(float) * spatial);
        if (e == 4 || e == 6) continue;
        dn_activate_span(dst, spatial, 0.f, DN_ACT_LOGISTIC);
        if ((e == 0 || e == 2) && s != 1)
            for (int i = 0; i < spatial; i++) dst[i] = s * dst[i] - shift;
    }
    return DN_OK;
}

const dn_kernels DN_CPU(kernels_Gaussian_yolo) = {.forward = forward};
