/* The widest float vector of the level being compiled, through GCC's vector extensions: read
   and written through the vector type (may_alias, unaligned), never memcpy (with memcpy GCC
   kept the accumulators of the x86-64-v3 build in memory). */
#ifndef DN_CPU_SIMD_H
#define DN_CPU_SIMD_H

#if defined(__AVX512F__)
#define VL 16
#elif defined(__AVX2__)
#define VL 8
#else
#define VL 4
#endif

typedef float vf __attribute__((vector_size(VL * sizeof(float)), aligned(sizeof(float)), may_alias));
typedef int vi __attribute__((vector_size(VL * sizeof(int))));

/* Lanes of two vectors a, b interleaved: the first halves (a0 b0 a1 b1 ...) and the second. */
#if VL == 16
#define FIRST_HALVES 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23
#define SECOND_HALVES 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31
#elif VL == 8
#define FIRST_HALVES 0, 8, 1, 9, 2, 10, 3, 11
#define SECOND_HALVES 4, 12, 5, 13, 6, 14, 7, 15
#else
#define FIRST_HALVES 0, 4, 1, 5
#define SECOND_HALVES 2, 6, 3, 7
#endif
#ifdef __clang__
#define INTERLEAVE(a, b, lanes) __builtin_shufflevector(a, b, lanes)
#else
#define INTERLEAVE(a, b, lanes) __builtin_shuffle(a, b, (vi){lanes})
#endif

/* VL vectors transposed in registers (lane i of v[j] -> lane j of v[i]): log2(VL) rounds,
   each interleaving the first half of the vectors with the second. */
static inline __attribute__((always_inline)) void dn_transpose(vf *v)
{
    for (int round = 1; round < VL; round *= 2) {
        vf t[VL];
        for (int j = 0; j < VL / 2; j++) {
            t[2 * j] = INTERLEAVE(v[j], v[j + VL / 2], FIRST_HALVES);
            t[2 * j + 1] = INTERLEAVE(v[j], v[j + VL / 2], SECOND_HALVES);
        }
        for (int j = 0; j < VL; j++) v[j] = t[j];
    }
}

#endif /* DN_CPU_SIMD_H */
