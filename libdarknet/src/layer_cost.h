/* State of a [cost] layer, shared by layer_cost.c and its kernels. */
#ifndef DN_LAYER_COST_H
#define DN_LAYER_COST_H

#include "dn.h"

typedef enum { COST_SSE, COST_MASKED, COST_SMOOTH } cost_type;

typedef struct cost {
    cost_type type;
    float scale;
} cost;

#endif /* DN_LAYER_COST_H */
