/* State of a [reorg] layer, shared by layer_reorg.c and its kernels. */
#ifndef DN_LAYER_REORG_H
#define DN_LAYER_REORG_H

#include "dn.h"

typedef struct reorg {
    int stride, reverse;
} reorg;

#endif /* DN_LAYER_REORG_H */
