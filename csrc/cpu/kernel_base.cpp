// Baseline variant of the CPU loops: the compiler's default target (SSE2 on x86-64).

// Standard headers first, so that they stay compiled for the baseline target.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "cpu/dispatch.h"

#define IFNAS_CPU_ISA baseline
#include "cpu/kernel.h"
