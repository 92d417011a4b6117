/* dn_network_layer_attrs: each layer kind lists the hyper-parameters its parser resolved
   (for exporters and inspection), into caller-sized buffers. */
#include "dn.h"

/* Append an entry of n numbers; returns where they go, or NULL when the buffers are full
   (the totals still count it, so the caller can size them). */
static double *add(dn_attrs *a, const char *name, dn_attr_type type, int n, const char *str)
{
    const int slot = a->n_items++, first = a->n_values;
    a->n_values += n;
    if (slot >= a->max_items || a->n_values > a->max_values) return NULL;
    a->items[slot] = (dn_attr){name, type, n, a->values + first, str};
    return a->values + first;
}

void dn_attr_int(dn_attrs *a, const char *name, int v)
{
    double *d = add(a, name, DN_ATTR_INT, 1, NULL);
    if (d) d[0] = v;
}

void dn_attr_float(dn_attrs *a, const char *name, float v)
{
    double *d = add(a, name, DN_ATTR_FLOAT, 1, NULL);
    if (d) d[0] = v;
}

void dn_attr_ints(dn_attrs *a, const char *name, const int *v, int n)
{
    double *d = add(a, name, DN_ATTR_INTS, n, NULL);
    for (int i = 0; d && i < n; i++) d[i] = v[i];
}

void dn_attr_floats(dn_attrs *a, const char *name, const float *v, int n)
{
    double *d = add(a, name, DN_ATTR_FLOATS, n, NULL);
    for (int i = 0; d && i < n; i++) d[i] = v[i];
}

void dn_attr_str(dn_attrs *a, const char *name, const char *v) { add(a, name, DN_ATTR_STR, 0, v); }

dn_status dn_network_layer_attrs(const dn_network *net, int index, dn_attr *attrs, int max_attrs, double *values,
                                 int max_values, int *n_attrs, int *n_values)
{
    if (index < 0 || index >= net->n)
        return dn_fail(DN_ERR_SHAPE, "layer index %d out of range: the network has %d layers", index, net->n);
    if (max_attrs < 0 || max_values < 0 || (max_attrs && !attrs) || (max_values && !values))
        return dn_fail(DN_ERR_SHAPE, "dn_network_layer_attrs: pass buffers of max_attrs and max_values entries "
                       "(or 0 and NULL to size them)");
    dn_attrs a = {attrs, max_attrs, 0, values, max_values, 0};
    const dn_layer *l = &net->layers[index];
    if (l->ops->attrs) l->ops->attrs(l, &a);
    *n_attrs = a.n_items;
    *n_values = a.n_values;
    return DN_OK;
}
