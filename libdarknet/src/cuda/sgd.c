/* Momentum SGD on device arrays (spec §4.5), one kernel per parameter array. */
#include "cuda.h"

dn_status dn_cuda_sgd_update(dn_cuda_net *s, dn_cuda_array *w, dn_cuda_array *u, const dn_update *up, float lr,
                             int decay)
{
    if (!w->data || !u->data) return DN_OK; /* no such parameter, or frozen */
    const float d = decay ? up->decay * up->batch : 0.f, step = lr / up->batch;
    DN_CUDA_TRY(dn_cuda_sgd(w->data, u->data, w->n, step, d, up->momentum, s->stream), "in the SGD update");
    return DN_OK;
}
