/* Picks the CPU backend for this processor at run time and holds the per-call
   thread count. Compiled once, at the baseline instruction set. */
#include <omp.h>
#include <pthread.h>
#include <string.h>

#include "cpu.h"

extern const dn_backend dn_cpu_base_backend;
#if defined(__x86_64__) && !defined(DN_CPU_BASE_ONLY)
extern const dn_backend dn_cpu_avx2_backend, dn_cpu_avx512_backend;
#endif

static __thread int call_threads;
static int forked;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static const dn_backend *chosen;

int dn_cpu_threads(void) { return forked ? 1 : call_threads > 0 ? call_threads : omp_get_max_threads(); }

void dn_cpu_set_threads(int threads) { call_threads = threads; }

static void after_fork_in_child(void) { forked = 1; }

/* DARKNETPY_CPU=baseline|avx2|avx512 forces a level (it must be supported). */
static void choose(void)
{
    pthread_atfork(NULL, NULL, after_fork_in_child);
    chosen = &dn_cpu_base_backend;
#if defined(__x86_64__) && !defined(DN_CPU_BASE_ONLY)
    __builtin_cpu_init();
    const int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    const int avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                       __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    const char *want = getenv("DARKNETPY_CPU");
    if (want && strcmp(want, "baseline") == 0) return;
    if (avx512 && !(want && strcmp(want, "avx2") == 0)) chosen = &dn_cpu_avx512_backend;
    else if (avx2) chosen = &dn_cpu_avx2_backend;
#endif
}

const dn_backend *dn_cpu_backend(void)
{
    pthread_once(&once, choose);
    return chosen;
}
