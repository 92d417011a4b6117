/* State of a [convolutional] layer, shared by layer_convolutional.c and its kernels. */
#ifndef DN_LAYER_CONVOLUTIONAL_H
#define DN_LAYER_CONVOLUTIONAL_H

#include "dn.h"

typedef struct conv {
    int n, groups, nweights;
    dn_conv_geom g;        /* geometry of one group's input */
    dn_act act;
    const struct conv *shared; /* share_index: weights live in that layer ... */
    int shared_index;          /* ... of this index (-1: its own weights) */
    int lent;                  /* other layers share these weights (share_index) */
    float *weights, *biases;
    dn_bn bn;
    /* inference with batch norm folded in (spec §3.3), made by the backend's prepare:
       out = act(fused_scales[f] * (raw weights x input) + fused_biases[f]), the scale
       applied in the output pass rather than kept as a second, scaled weight copy */
    float *fused_scales, *fused_biases;
    float *packed_weights; /* the raw weights in the CPU backend's packed GEMM layout (one group); in
                              inference, unless lent, the only copy: prepare frees `weights`, the
                              backend's pull restores it */
    int wino_m;            /* Winograd output tile size (2 or 4) of a prepared 3x3 layer, else 0 */
    float *weight_updates, *bias_updates;
    float *preact;         /* pre-activation copy for swish/mish backward */
} conv;

#endif /* DN_LAYER_CONVOLUTIONAL_H */
