/* State of a [activation] layer, shared by layer_activation.c and its kernels. */
#ifndef DN_LAYER_ACTIVATION_H
#define DN_LAYER_ACTIVATION_H

#include "dn.h"

typedef struct activation {
    dn_act act;
    int c, spatial;     /* how dn_activate sees one sample: channels x pixels */
} activation;

#endif /* DN_LAYER_ACTIVATION_H */
