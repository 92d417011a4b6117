/* State of a [region] layer, shared by layer_region.c and its kernels. */
#ifndef DN_LAYER_REGION_H
#define DN_LAYER_REGION_H

#include <math.h>

#include "dn.h"

/* A softmax tree (region_tree.c): node i's parent (-1: a root, else < i); the groups of
   siblings are the runs of equal parents, group g = nodes [group_start[g], group_start[g+1]). */
typedef struct region_tree {
    int n, groups;
    int *parent, *group_start;
} region_tree;

/* Read the .tree file `name` (looked up next to the cfg too); it must have `classes` nodes. */
dn_status region_tree_read(region_tree *t, const char *name, const char *cfg_path, int classes);
void region_tree_free(region_tree *t);

typedef struct region {
    int n, classes, coords, softmax, classfix;
    float *anchors;   /* 2n: w, h in grid cells */
    region_tree tree; /* n == 0: none */
} region;

static inline float region_logistic(float x) { return 1.f / (1.f + expf(-x)); }

#endif /* DN_LAYER_REGION_H */
