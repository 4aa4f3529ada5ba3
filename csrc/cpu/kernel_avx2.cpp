// AVX2 variant of the CPU loops (with FMA and F16C), for x86-64 processors since 2013.

// Headers first, so that what they define stays compiled for the baseline target.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>

#include "cpu/dispatch.h"

#if IFNAS_CPU_X86_VARIANTS
#pragma GCC target("avx2,fma,f16c")
// GCC does not define __AVX512F__ and friends for a target pragma; kernel.h reads these.
#define IFNAS_ISA_AVX2 1
#define IFNAS_ISA_F16C 1
#define IFNAS_CPU_ISA avx2
#include "cpu/kernel.h"
#endif
