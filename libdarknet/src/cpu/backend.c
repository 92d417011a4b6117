/* The CPU backend: host memory and the per-kind kernel table. */
#include <string.h>

#include "cpu.h"

static dn_status alloc(dn_tensor *t, size_t n, const char *what)
{
    DN_TRY(dn_alloc_floats(&t->data, n, what));
    t->n = n;
    t->device = &DN_CPU(backend);
    return DN_OK;
}

static void release(dn_tensor *t)
{
    free(t->data);
    *t = (dn_tensor){0};
}

static dn_status upload(dn_tensor *dst, size_t offset, const float *src, size_t n)
{
    memcpy(dst->data + offset, src, sizeof(float) * n);
    return DN_OK;
}

static dn_status download(float *dst, const dn_tensor *src, size_t offset, size_t n)
{
    memcpy(dst, src->data + offset, sizeof(float) * n);
    return DN_OK;
}

static void begin(const dn_ctx *ctx) { dn_cpu_set_threads(ctx->threads); }

#define DN_STR_(x) #x
#define DN_STR(x) DN_STR_(x)

const dn_backend DN_CPU(backend) = {
    .name = "cpu (" DN_STR(DN_ISA) ")",
    .alloc = alloc,
    .release = release,
    .upload = upload,
    .download = download,
    .begin = begin,
    .kernels = {
#define DN_LAYER(kind, caps) [DN_KIND_##kind] = &DN_CPU(kernels_##kind),
#include "../layers.def"
#undef DN_LAYER
    },
};
