// Instruction-set variants of the CPU loops (kernel.h) and the choice among them at run time.
//
// The wheel has to run on any x86-64 processor, so the loops are compiled three times: for the
// baseline (SSE2), for AVX2 + FMA + F16C, and for AVX-512. The first call picks the widest
// variant that this processor supports, or no wider than IFNAS_CPU_ISA when that is set. Other
// processors and compilers get the baseline only.

#pragma once

#include <cstdint>

#include "cpu/dtypes.h"

#if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__) && !defined(__clang__)
#define IFNAS_CPU_X86_VARIANTS 1
#else
#define IFNAS_CPU_X86_VARIANTS 0
#endif

namespace ifnas::cpu {

// Elements per chunk, the unit of work of one thread. Fixed, not derived from the thread
// count, so that the weight gradient's partial sums (one per chunk) do not depend on it.
constexpr int64_t kChunk = 32 * 1024;

template <typename T>
struct Kernels {
  void (*forward)(const T* const* inputs, const acc_t<T>* weights, int64_t num_inputs, T* out,
                  int64_t begin, int64_t end, bool stream);
  void (*backward)(const T* grad, const T* const* inputs, const acc_t<T>* weights,
                   int64_t num_inputs, T* const* input_grads, double* dots, int64_t begin,
                   int64_t end, bool stream);
};

struct KernelTable {
  const char* isa;
  Kernels<float> f32;
  Kernels<double> f64;
  Kernels<Half> f16;
  Kernels<BFloat16> bf16;

  const Kernels<float>& get(float*) const { return f32; }
  const Kernels<double>& get(double*) const { return f64; }
  const Kernels<Half>& get(Half*) const { return f16; }
  const Kernels<BFloat16>& get(BFloat16*) const { return bf16; }
};

namespace baseline {
KernelTable kernel_table();
}

#if IFNAS_CPU_X86_VARIANTS
namespace avx2 {
KernelTable kernel_table();
}
namespace avx512 {
KernelTable kernel_table();
}
#endif

// The table of the widest variant this processor runs; chosen on the first call.
const KernelTable& kernel_table();

}  // namespace ifnas::cpu
