/* The layer table, generated from layers.def. */
#include <string.h>

#include "dn.h"

#define DN_LAYER(kind, caps) extern const dn_layer_ops dn_layer_##kind;
#include "layers.def"
#undef DN_LAYER

static const dn_layer_ops *const table[] = {
#define DN_LAYER(kind, caps) &dn_layer_##kind,
#include "layers.def"
#undef DN_LAYER
};

static const unsigned caps_table[] = {
#define DN_LAYER(kind, caps) caps,
#include "layers.def"
#undef DN_LAYER
};

/* Sections upstream knows that this engine refuses with a clear message. */
const char *const dn_unsupported_sections[] = {
    "[rnn]", "[gru]", "[lstm]", "[crnn]",
    "[conv_lstm]", "[history]", "[contrastive]", "[implicit]", "[lrn]", "[normalization]",
    NULL};

/* "[name]" matches the kind's name or alias. */
static int matches(const char *section_type, const char *name)
{
    size_t n = strlen(name), len = strlen(section_type);
    return len == n + 2 && section_type[0] == '[' && section_type[len - 1] == ']' &&
           strncmp(section_type + 1, name, n) == 0;
}

const dn_layer_ops *dn_layer_ops_find(const char *section_type, dn_layer_kind *kind)
{
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        if (matches(section_type, table[i]->name) || (table[i]->alias && matches(section_type, table[i]->alias))) {
            *kind = (dn_layer_kind)i;
            return table[i];
        }
    return NULL;
}

unsigned dn_layer_caps(dn_layer_kind kind) { return caps_table[kind]; }
