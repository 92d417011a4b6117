/* State of a [sam] layer, shared by layer_sam.c and its kernels. */
#ifndef DN_LAYER_SAM_H
#define DN_LAYER_SAM_H

#include "dn.h"

typedef struct sam {
    int from;           /* absolute index of the multiplied layer */
    dn_act act;
    float *preact;      /* pre-activation copy for swish/mish backward */
} sam;

#endif /* DN_LAYER_SAM_H */
