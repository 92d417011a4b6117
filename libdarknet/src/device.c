/* Device strings ("cpu", "cuda", "cuda:N") to backends. Builds without CUDA
   (DN_WITH_CUDA unset) answer every CUDA request with DN_ERR_DEVICE. */
#include <stdlib.h>
#include <string.h>

#include "dn.h"

/* Device number of "cuda" / "cuda:N" into *ordinal; -1 when `device` is not of that form. */
static int cuda_ordinal(const char *device, int *ordinal)
{
    if (strncmp(device, "cuda", 4) != 0) return -1;
    if (device[4] == 0) {
        *ordinal = 0;
        return 0;
    }
    if (device[4] != ':' || device[5] < '0' || device[5] > '9') return -1;
    char *end;
    long n = strtol(device + 5, &end, 10);
    if (*end || n > 1024) return -1;
    *ordinal = (int)n;
    return 0;
}

dn_status dn_backend_find(const char *device, const dn_backend **out)
{
    int ordinal;
    *out = NULL;
    if (strcmp(device, "cpu") == 0) {
        *out = dn_cpu_backend();
        return DN_OK;
    }
    if (cuda_ordinal(device, &ordinal) != 0)
        return dn_fail(DN_ERR_SHAPE, "unknown device '%s': use \"cpu\", \"cuda\" or \"cuda:N\"", device);
    return dn_cuda_backend(ordinal, out);
}

#ifndef DN_WITH_CUDA
#define NO_CUDA "this darknetpy was built without CUDA (nvcc was not found when it was built); rebuild it " \
                "where nvcc is installed, or use device=\"cpu\""

dn_status dn_cuda_backend(int ordinal, const dn_backend **out)
{
    (void)ordinal;
    *out = NULL;
    return dn_fail(DN_ERR_DEVICE, NO_CUDA);
}

dn_status dn_cuda_device_count(int *count)
{
    *count = 0;
    return dn_fail(DN_ERR_DEVICE, NO_CUDA);
}

dn_status dn_cuda_memory_info(int ordinal, size_t *free_bytes, size_t *total_bytes)
{
    (void)ordinal;
    *free_bytes = *total_bytes = 0;
    return dn_fail(DN_ERR_DEVICE, NO_CUDA);
}

const char *dn_cuda_library_error(const char *name)
{
    (void)name;
    return NO_CUDA;
}
#endif
