// Storage and accumulation types of the CPU kernels, without ATen.
//
// Half and BFloat16 have the layout of c10::Half and c10::BFloat16 (one uint16_t), so the glue
// can reinterpret tensor data pointers. Included before any `#pragma GCC target`, so that these
// inline helpers are compiled once, for the baseline instruction set.

#pragma once

#include <cstdint>
#include <cstring>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

namespace ifnas::cpu {

struct Half {
  uint16_t bits;
};

struct BFloat16 {
  uint16_t bits;
};

// Accumulation type: float32 for every storage type but float64.
template <typename T>
struct AccType {
  using type = float;
};

template <>
struct AccType<double> {
  using type = double;
};

template <typename T>
using acc_t = typename AccType<T>::type;

inline uint32_t bits_of(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}

inline float float_of(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

}  // namespace ifnas::cpu
