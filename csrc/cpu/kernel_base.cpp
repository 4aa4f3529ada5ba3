// Baseline variant of the CPU loops: the compiler's default target (SSE2 on x86-64).

// Headers first, so that what they define stays compiled for the baseline target.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>

#include "cpu/dispatch.h"

#define IFNAS_CPU_ISA baseline
#include "cpu/kernel.h"
