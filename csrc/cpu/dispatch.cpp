// Run-time choice of the CPU loops' instruction-set variant (see dispatch.h).

#include "cpu/dispatch.h"

#include <cstdlib>
#include <cstring>

namespace ifnas::cpu {

namespace {

// IFNAS_CPU_ISA=baseline|avx2|avx512 caps the choice (so that the tests can run the narrower
// variants on a wide processor); a variant this processor lacks is never chosen, and any other
// value leaves the choice to the processor. ifnas_kernels warns when the result differs from
// the value asked for.
bool allowed(const char* variant) {
  static const char* const kOrder[] = {"baseline", "avx2", "avx512"};
  const char* cap = std::getenv("IFNAS_CPU_ISA");
  int cap_rank = 2;
  int variant_rank = 0;
  for (int rank = 0; rank < 3; ++rank) {
    if (cap != nullptr && std::strcmp(cap, kOrder[rank]) == 0) {
      cap_rank = rank;
    }
    if (std::strcmp(variant, kOrder[rank]) == 0) {
      variant_rank = rank;
    }
  }
  return variant_rank <= cap_rank;
}

KernelTable choose_kernel_table() {
#if IFNAS_CPU_X86_VARIANTS
  __builtin_cpu_init();
  if (allowed("avx512") && __builtin_cpu_supports("avx512f") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq")) {
    return avx512::kernel_table();
  }
  if (allowed("avx2") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("f16c")) {
    return avx2::kernel_table();
  }
#endif
  return baseline::kernel_table();
}

}  // namespace

const KernelTable& kernel_table() {
  static const KernelTable table = choose_kernel_table();
  return table;
}

}  // namespace ifnas::cpu
