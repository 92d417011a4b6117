/* State of a [shortcut] layer, shared by layer_shortcut.c and its kernels. */
#ifndef DN_LAYER_SHORTCUT_H
#define DN_LAYER_SHORTCUT_H

#include "dn.h"

#define MAX_SOURCES 1024

enum { WT_NONE, WT_PER_FEATURE, WT_PER_CHANNEL };   /* printed as wt = %d */
enum { WN_NONE, WN_RELU, WN_SOFTMAX };              /* printed as wn = %d */

typedef struct shortcut {
    int n;              /* number of `from` layers: inputs 1..n (input 0 is the previous layer) */
    int *src_c;         /* their channel counts (for the console line) */
    int wtype, wnorm;
    int nweights;       /* 0, n+1 or (n+1)*c; layout [input][channel], input 0 = previous layer */
    dn_act act;
    float *weights;         /* raw weights: saved, loaded, updated */
    float *weight_updates;  /* training */
    float *norm;            /* scratch: weights normalised for the current pass */
    float *fused;           /* pre-normalised weights of a fused network (spec §3.9 quirk) */
    float *preact;          /* pre-activation copy for swish/mish backward */
} shortcut;

static inline int per_input(const shortcut *p, int c) { return p->wtype == WT_PER_CHANNEL ? c : 1; }

#endif /* DN_LAYER_SHORTCUT_H */
