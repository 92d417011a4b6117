/* State of a [local] layer, shared by layer_local.c and its kernels. */
#ifndef DN_LAYER_LOCAL_H
#define DN_LAYER_LOCAL_H

#include "dn.h"

typedef struct local {
    int size, stride, pad; /* pad: input pixels of zeros on each side */
    dn_act act;
    float *biases;  /* one per output value: [filters][out_h][out_w] */
    float *weights; /* per output position, per filter, a (c, size, size) kernel: [out_h*out_w][filters][c*size*size] */
} local;

static inline size_t local_n_weights(const dn_layer *l)
{
    const local *p = l->p;
    return (size_t)l->out_w * l->out_h * l->out_c * l->c * p->size * p->size;
}

#endif /* DN_LAYER_LOCAL_H */
