/* Activation functions and their derivatives (spec §3.4), following upstream's
   GPU path where its CPU path returns 0 (relu6, swish/mish outside conv). */
#include <math.h>
#include <string.h>

#include "dn.h"

static const char *const act_names[] = {
#define DN_ACT_NAME(id, name) name,
    DN_ACTIVATIONS(DN_ACT_NAME)
#undef DN_ACT_NAME
};

int dn_act_from_name(const char *name)
{
    for (int i = 0; i < DN_ACT_COUNT; i++)
        if (strcmp(name, act_names[i]) == 0) return i;
    return -1;
}

const char *dn_act_name(dn_act a) { return act_names[a]; }

int dn_act_needs_input(dn_act a)
{
    return a == DN_ACT_SWISH || a == DN_ACT_MISH || a == DN_ACT_HARD_MISH || a == DN_ACT_GELU || a == DN_ACT_NORM_CHAN;
}
