// Run-time choice of the CPU loops' instruction-set variant (see dispatch.h).

#include "cpu/dispatch.h"

namespace ifnas::cpu {

namespace {

KernelTable choose_kernel_table() {
#if IFNAS_CPU_X86_VARIANTS
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
    return avx512::kernel_table();
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
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
