// AVX2 variant of the CPU loops (with FMA and F16C), for x86-64 processors since 2013.

// Standard headers first, so that they stay compiled for the baseline target.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "cpu/dispatch.h"

#if IFNAS_CPU_X86_VARIANTS
#pragma GCC target("avx2,fma,f16c")
#define IFNAS_CPU_ISA avx2
#include "cpu/kernel.h"
#endif
