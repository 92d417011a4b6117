/* [yolo] on CUDA, inference: the activated head the detection decoder reads (no loss). */
#include "../layer_yolo.h"
#include "cuda.h"

static dn_status forward(dn_layer *l, const dn_tensor *const *in, dn_tensor *out, dn_ctx *ctx)
{
    const yolo *p = l->p;
    DN_CUDA_TRY(dn_cuda_yolo(in[0]->data, out->data, l->batch * p->n * (p->classes + 5), p->classes + 5,
                             l->w * l->h, p->new_coords, p->scale_x_y, dn_cuda_of(ctx)->stream), "in yolo");
    return DN_OK;
}

const dn_kernels dn_cuda_kernels_yolo = {.forward = forward};
