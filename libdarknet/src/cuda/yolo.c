/* [yolo] on CUDA: the activations on the device; in training the loss (yolo_loss.c) runs
   on the host on a downloaded copy of the head, and its delta (and the output, whose
   non-finite objectness it may zero) goes back up. */
#include <string.h>

#include "../layer_yolo.h"
#include "cuda.h"

static dn_status loss(dn_layer *l, dn_tensor *out, dn_ctx *ctx)
{
    dn_cuda_net *s = dn_cuda_of(ctx);
    const size_t n = (size_t)l->batch * l->outputs, nt = (size_t)l->batch * ctx->truth_size;
    float *host;
    DN_TRY(dn_cuda_host_scratch(s, 2 * n + nt, &host));
    float *output = host, *delta = host + n, *truth = host + 2 * n;
    DN_TRY(out->device->download(output, out, 0, n));
    DN_TRY(out->device->download(truth, &ctx->truth, 0, nt));
    memset(delta, 0, sizeof(float) * n);
    DN_TRY(dn_yolo_loss(l, output, delta, truth, ctx->truth_size, dn_cpu_threads()));
    DN_TRY(out->device->upload(out, 0, output, n));
    return out->device->upload(&l->delta, 0, delta, n);
}

static dn_status forward(dn_layer *l, const dn_tensor *const *in, dn_tensor *out, dn_ctx *ctx)
{
    const yolo *p = l->p;
    DN_CUDA_TRY(dn_cuda_yolo(in[0]->data, out->data, l->batch * p->n * (p->classes + 5), p->classes + 5,
                             l->w * l->h, p->new_coords, p->scale_x_y, dn_cuda_of(ctx)->stream), "in yolo");
    return ctx->training && ctx->truth.data ? loss(l, out, ctx) : DN_OK;
}

/* The loss's delta, unscaled, into the input's (as the CPU). */
static dn_status backward(dn_layer *l, const dn_tensor *const *in, dn_tensor *const *in_delta, dn_ctx *ctx)
{
    (void)in;
    if (!in_delta[0]->data) return DN_OK;
    const int total = l->batch * l->outputs;
    DN_CUDA_TRY(dn_cuda_add_prefix(l->delta.data, total, in_delta[0]->data, total, total, 1, 1.f,
                                   dn_cuda_of(ctx)->stream), "in yolo's backward");
    return DN_OK;
}

const dn_kernels dn_cuda_kernels_yolo = {.forward = forward, .backward = backward};
