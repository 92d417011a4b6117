/* State of a [route] layer, shared by layer_route.c and its kernels. */
#ifndef DN_LAYER_ROUTE_H
#define DN_LAYER_ROUTE_H

#include "dn.h"

#define MAX_SOURCES 1024

/* The listed layers are the layer's inputs (l->in_idx). */
typedef struct route {
    int groups, group_id;
} route;

#endif /* DN_LAYER_ROUTE_H */
