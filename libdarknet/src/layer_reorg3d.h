/* State of a [reorg3d] layer, shared by layer_reorg3d.c and its kernels. */
#ifndef DN_LAYER_REORG3D_H
#define DN_LAYER_REORG3D_H

#include "dn.h"

typedef struct reorg3d {
    int stride;
} reorg3d;

#endif /* DN_LAYER_REORG3D_H */
