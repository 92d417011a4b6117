/* State of a [scale_channels] layer, shared by layer_scale_channels.c and its kernels. */
#ifndef DN_LAYER_SCALE_CHANNELS_H
#define DN_LAYER_SCALE_CHANNELS_H

#include "dn.h"

typedef struct scale_channels {
    int from;           /* absolute index of the scaled layer */
    int scale_wh;
    dn_act act;
    float *preact;      /* pre-activation copy for swish/mish backward */
} scale_channels;

#endif /* DN_LAYER_SCALE_CHANNELS_H */
