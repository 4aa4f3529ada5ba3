// AVX-512 variant of the CPU loops (F, BW, VL, DQ with FMA and F16C), 512-bit vectors.

// Standard headers first, so that they stay compiled for the baseline target.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "cpu/dispatch.h"

#if IFNAS_CPU_X86_VARIANTS
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c,prefer-vector-width=512")
#define IFNAS_CPU_ISA avx512
#include "cpu/kernel.h"
#endif
