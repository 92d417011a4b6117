/* Coverage feedback for atheris/libFuzzer from a GCC build: GCC's
   -fsanitize-coverage=trace-pc calls __sanitizer_cov_trace_pc at every basic block
   of the engine; this counts each (previous block, block) edge, AFL-style, in 8-bit
   counters that tests/fuzz/common.py registers with libFuzzer (clang's
   inline-8bit-counters would do this in the compiler; GCC has no such mode).
   Built by tests/fuzz/build.sh, without instrumentation, and preloaded. */
#include <stddef.h>
#include <stdint.h>

#define DN_COV_SIZE (1 << 16)

size_t dn_cov_size = DN_COV_SIZE;
uint8_t dn_cov_counters[DN_COV_SIZE];
size_t dn_cov_pcs[2 * DN_COV_SIZE]; /* libFuzzer's PC table: (pc, flags) per counter */

static _Thread_local uintptr_t previous;

void __sanitizer_cov_trace_pc(void)
{
    uintptr_t here = (uintptr_t)__builtin_return_address(0);
    here = (here ^ (here >> 16)) * 0x9E3779B1u;
    dn_cov_counters[(here ^ previous) & (DN_COV_SIZE - 1)]++;
    previous = here >> 1;
}

__attribute__((constructor)) static void fill_pc_table(void)
{
    for (size_t i = 0; i < DN_COV_SIZE; i++) dn_cov_pcs[2 * i] = i + 1; /* distinct fake PCs */
}
