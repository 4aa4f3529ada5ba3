// AVX-512 variant of the CPU loops (F, BW, VL, DQ with FMA and F16C), 512-bit vectors.

// Headers first, so that what they define stays compiled for the baseline target.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>

#include "cpu/dispatch.h"

#if IFNAS_CPU_X86_VARIANTS
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c,prefer-vector-width=512")
// GCC does not define __AVX512F__ and friends for a target pragma; kernel.h reads these.
#define IFNAS_ISA_AVX512 1
#define IFNAS_ISA_AVX2 1
#define IFNAS_ISA_F16C 1
// GCC 12's avx512fintrin.h trips -Wmaybe-uninitialized inside _mm512_cvtph_ps (a false alarm).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define IFNAS_CPU_ISA avx512
#include "cpu/kernel.h"
#endif
