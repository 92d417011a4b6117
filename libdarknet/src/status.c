/* Error messages, the log sink, allocation and the random generator. */
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dn.h"

static _Thread_local char last_error[1024];
static dn_log_fn log_fn;
static void *log_user;

const char *dn_last_error(void) { return last_error; }

dn_status dn_fail(dn_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

void dn_log_set(dn_log_fn fn, void *user)
{
    log_fn = fn;
    log_user = user;
}

void dn_log(int level, const char *fmt, ...)
{
    if (!log_fn) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_fn(level, msg, log_user);
}

static __thread size_t *tally, budget;
static __thread int over_budget;

void dn_alloc_tally(size_t *counter, size_t limit)
{
    tally = counter;
    budget = limit;
    over_budget = 0;
}

int dn_alloc_over_budget(void) { return over_budget; }

void dn_alloc_count(size_t bytes)
{
    if (tally) *tally += bytes;
}

/* Whether n more floats stay within the limit of the count (refused before anything is touched). */
static int within_budget(size_t n)
{
    if (tally && budget && n > (budget - *tally) / sizeof(float)) {
        over_budget = 1;
        return 0;
    }
    return 1;
}

float *dn_floats(size_t n)
{
    float *p = n && within_budget(n) ? calloc(n, sizeof(float)) : NULL;
    if (p && tally) *tally += n * sizeof(float);
    return p;
}

/* Floats on whole cache lines (SIMD loads that never straddle two), not initialised: for arrays
   the caller fills whole, page by page as it goes (so that its peak memory stays low). */
static float *floats_aligned(size_t n)
{
    void *p = NULL;
    if (!n || n > SIZE_MAX / sizeof(float) || !within_budget(n) || posix_memalign(&p, 64, n * sizeof(float)))
        return NULL;
    if (tally) *tally += n * sizeof(float);
    return p;
}

void dn_release_pages(const void *p, size_t bytes)
{
#ifdef MADV_DONTNEED
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), lo = ((uintptr_t)p + page - 1) / page * page,
                    hi = ((uintptr_t)p + bytes) / page * page;
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
#else
    (void)p, (void)bytes;
#endif
}

size_t dn_available_memory(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[128];
    unsigned long long kib = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1) break;
    fclose(f);
    return (size_t)kib * 1024;
}

/* *dst = p, the n floats asked for `what`, or DN_ERR_OOM naming them where p is NULL. */
static dn_status allocated(float **dst, float *p, size_t n, const char *what)
{
    *dst = p;
    if (n && !p)
        return dn_fail(DN_ERR_OOM, "out of memory allocating %zu floats (%.1f MiB) for %s; "
                       "lower batch (or raise subdivisions) or the input size",
                       n, n * 4.0 / 1048576.0, what);
    return DN_OK;
}

dn_status dn_alloc_floats(float **dst, size_t n, const char *what) { return allocated(dst, dn_floats(n), n, what); }

dn_status dn_alloc_floats_aligned(float **dst, size_t n, const char *what)
{
    return allocated(dst, floats_aligned(n), n, what);
}

void dn_free_floats(float **p, size_t n)
{
    if (*p && tally) *tally -= n * sizeof(float);
    free(*p);
    *p = NULL;
}

float dn_rng_uniform(dn_rng *r, float lo, float hi)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    uint64_t v = r->s * 0x2545F4914F6CDD1DULL;
    return lo + (hi - lo) * (float)((v >> 40) * (1.0 / 16777216.0));
}

void dn_appendf(char *buf, size_t n, size_t *pos, const char *fmt, ...)
{
    if (*pos >= n) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf + *pos, n - *pos, fmt, ap);
    va_end(ap);
    if (k > 0) *pos += (size_t)k;
}
