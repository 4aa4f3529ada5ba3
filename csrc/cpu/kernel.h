// CPU loops of the fused weighted sum, free of ATen so that each instruction-set variant
// (kernel_avx512.cpp, kernel_avx2.cpp, kernel_base.cpp) compiles them under its own target.
//
// The includer includes cpu/dtypes.h and the standard headers below first (so that they stay
// compiled for the baseline), then switches the target with `#pragma GCC target` (x86 variants),
// defines IFNAS_CPU_ISA (the namespace of this variant) and includes this file, which defines
// that variant's kernel_table(). Every kernel works on one dense range [begin, end) of elements
// that all operands share; the glue in weighted_sum_cpu.cpp splits the tensors into fixed chunks
// and runs them on torch's threads.
//
// Loop order: element-major. Each step takes kVec<T> consecutive elements (a 64-byte cache line
// or more) of every operand, so all K input streams advance together, as the hardware
// prefetchers like. Bytes per element: forward reads K inputs and writes one output; backward
// reads the incoming gradient and K inputs and writes K input gradients. Sums stay in registers
// (forward) or in a K x kVec<T> array in L1 (the backward's dot products). Target features come
// from the includer's IFNAS_ISA_* macros.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>

#include "cpu/dispatch.h"

#ifndef IFNAS_CPU_ISA
#error "define IFNAS_CPU_ISA before including cpu/kernel.h"
#endif

// Steps pass between the inline helpers below by value; GCC notes that such vector returns would
// change the ABI of a non-inline function, which none of them is.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace ifnas::cpu::IFNAS_CPU_ISA {

// Elements per step: at least 16, and at least one 64-byte cache line, so that streaming stores
// always write whole lines (partial lines from 16 interleaved streams would be written back
// piecemeal). The compiler keeps these arrays in vector registers.
template <typename T>
constexpr int kVec = sizeof(T) >= 4 ? 16 : 64 / sizeof(T);

// Steps between flushes of the weight gradient's kVec<T> partial sums into float64.
constexpr int64_t kStepsPerFlush = 64;

// Inputs whose partial dot products live on the stack; more take a heap buffer.
constexpr int64_t kStackInputs = 64;

// Standard-library templates are compiled for the baseline target (see kernel_base.cpp); the
// loops use their own helpers instead, so that nothing they call changes with the target.
inline int64_t min_of(int64_t a, int64_t b) {
  return a < b ? a : b;
}

// ---------------------------------------------------------------------------------------------
// Conversions between the storage type T and the accumulation type acc_t<T>.

inline float half_bits_to_float(uint16_t h) {
  // Exponent and mantissa move into float32 position; infinities, NaNs and subnormals are then
  // fixed up (subnormals through a float subtraction of the implicit bit).
  const uint32_t shifted_exp = 0x7c00u << 13;
  uint32_t bits = (uint32_t(h) & 0x7fffu) << 13;
  const uint32_t exp = bits & shifted_exp;
  bits += (127u - 15u) << 23;
  if (exp == shifted_exp) {
    bits += (128u - 16u) << 23;
  } else if (exp == 0) {
    bits += 1u << 23;
    bits = bits_of(float_of(bits) - float_of(113u << 23));
  }
  return float_of(bits | ((uint32_t(h) & 0x8000u) << 16));
}

inline uint16_t float_to_half_bits(float value) {
  // Round to nearest even; overflow gives infinity, NaN stays NaN.
  const uint32_t f32_infinity = 255u << 23;
  const uint32_t f16_overflow = (127u + 16u) << 23;
  const uint32_t denormal_magic = ((127u - 15u) + (23u - 10u) + 1u) << 23;
  uint32_t bits = bits_of(value);
  const uint32_t sign = bits & 0x80000000u;
  bits ^= sign;

  uint16_t out;
  if (bits >= f16_overflow) {
    out = bits > f32_infinity ? 0x7e00 : 0x7c00;
  } else if (bits < (113u << 23)) {
    out = uint16_t(bits_of(float_of(bits) + float_of(denormal_magic)) - denormal_magic);
  } else {
    const uint32_t mantissa_odd = (bits >> 13) & 1u;
    bits += (uint32_t(15 - 127) << 23) + 0xfffu + mantissa_odd;
    out = uint16_t(bits >> 13);
  }
  return out | uint16_t(sign >> 16);
}

// ---------------------------------------------------------------------------------------------
// Steps. A step holds kVec<T> values of the accumulation type in an array of this target's vector
// registers (GCC vector types of the register's width, one zmm or two ymm for 16 floats); the
// loops over its registers unroll and the array lives in registers. Loads and stores move whole
// registers between memory and the step. Two earlier versions staged steps in memory: plain
// arrays copied in narrower pieces than they were read back (every load waited on a failed
// store-to-load forward), then one vector type wider than the registers, which GCC keeps in
// memory on AVX2; either ran at a sixth to a third of the copy bandwidth on AMD Zen 3.

#if IFNAS_ISA_AVX512
constexpr int kRegisterBytes = 64;
#elif IFNAS_ISA_AVX2
constexpr int kRegisterBytes = 32;
#else
constexpr int kRegisterBytes = 16;
#endif

template <typename E, int Bytes = kRegisterBytes>
struct VectorOf {
  typedef E type __attribute__((vector_size(Bytes)));
};

template <typename T>
struct Step {
  using Acc = acc_t<T>;
  using Register = typename VectorOf<Acc>::type;
  static constexpr int kLanes = kRegisterBytes / sizeof(Acc);
  static constexpr int kRegisters = kVec<T> / kLanes;
  Register reg[kRegisters];
};

// A register of 16-bit storage elements, and the half-register that one register of float32
// values rounds into.
using Packed16 = VectorOf<uint16_t>::type;
using Narrow16 = VectorOf<uint16_t, kRegisterBytes / 2>::type;
using Bits32 = VectorOf<uint32_t>::type;

// The two halves lo, hi as one vector (indices 0 .. 2n-1 of __builtin_shufflevector).
template <typename Half_, std::size_t... I>
inline Packed16 concat(const Half_& lo, const Half_& hi, std::index_sequence<I...>) {
  return __builtin_shufflevector(lo, hi, I...);
}

inline Packed16 concat(const Narrow16& lo, const Narrow16& hi) {
  return concat(lo, hi, std::make_index_sequence<kRegisterBytes / sizeof(uint16_t)>());
}

// Arithmetic on whole steps; each loop runs over the step's registers.
template <typename T>
inline Step<T> scaled(acc_t<T> w, const Step<T>& x) {
  Step<T> out;
#pragma GCC unroll 8
  for (int r = 0; r < Step<T>::kRegisters; ++r) {
    out.reg[r] = w * x.reg[r];
  }
  return out;
}

// acc += w * x
template <typename T>
inline void add_scaled(Step<T>& acc, acc_t<T> w, const Step<T>& x) {
#pragma GCC unroll 8
  for (int r = 0; r < Step<T>::kRegisters; ++r) {
    acc.reg[r] += w * x.reg[r];
  }
}

// acc += a * b
template <typename T>
inline void multiply_add(Step<T>& acc, const Step<T>& a, const Step<T>& b) {
#pragma GCC unroll 8
  for (int r = 0; r < Step<T>::kRegisters; ++r) {
    acc.reg[r] += a.reg[r] * b.reg[r];
  }
}

// Loads: one whole step of T from src (any alignment) into the accumulation type.
template <typename T>
inline Step<T> load_same_type(const T* src) {
  Step<T> s;
#pragma GCC unroll 8
  for (int r = 0; r < Step<T>::kRegisters; ++r) {
    std::memcpy(&s.reg[r], src + r * Step<T>::kLanes, kRegisterBytes);
  }
  return s;
}

inline Step<float> load_step(const float* src) {
  return load_same_type(src);
}

inline Step<double> load_step(const double* src) {
  return load_same_type(src);
}

inline Step<BFloat16> load_step(const BFloat16* src) {
  using S = Step<BFloat16>;
  S s;
#pragma GCC unroll 8
  for (int r = 0; r < S::kRegisters; ++r) {
    Narrow16 h;
    std::memcpy(&h, src + r * S::kLanes, sizeof(h));
    const Bits32 bits = __builtin_convertvector(h, Bits32) << 16;
    std::memcpy(&s.reg[r], &bits, sizeof(bits));
  }
  return s;
}

inline Step<Half> load_step(const Half* src) {
  using S = Step<Half>;
  S s;
#pragma GCC unroll 8
  for (int r = 0; r < S::kRegisters; ++r) {
    const Half* piece = src + r * S::kLanes;
#if IFNAS_ISA_AVX512
    const __m512 f = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(piece)));
#elif IFNAS_ISA_F16C
    const __m256 f = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(piece)));
#else
    float f[S::kLanes];
    for (int l = 0; l < S::kLanes; ++l) {
      f[l] = half_bits_to_float(piece[l].bits);
    }
#endif
    std::memcpy(&s.reg[r], &f, sizeof(s.reg[r]));
  }
  return s;
}

// Reads count <= kVec<T> elements, zero-padded (the end of a range is not a whole step).
template <typename T>
inline Step<T> load_partial(const T* src, int count) {
  alignas(64) T padded[kVec<T>] = {};
  std::memcpy(padded, src, count * sizeof(T));
  return load_step(padded);
}

template <typename T>
inline Step<T> load_any(const T* src, int count) {
  return count == kVec<T> ? load_step(src) : load_partial(src, count);
}

// ---------------------------------------------------------------------------------------------
// Stores. Outputs larger than the caches go out with non-temporal (streaming) stores: a plain
// store reads each destination line before writing it, one more pass over the output, and
// evicts inputs that are still to be read.

// Whether this build has streaming stores at all.
constexpr bool kHasStreamingStores =
#if defined(__SSE2__)
    true;
#else
    false;
#endif

// Writes one register's bytes to dst, bypassing the caches when `stream` (dst is then aligned
// to the register's width).
template <typename Vec>
inline void write_register(void* dst, const Vec& v, bool stream) {
  static_assert(sizeof(Vec) == kRegisterBytes, "one whole register");
#if IFNAS_ISA_AVX512
  if (stream) {
    __m512i piece;
    std::memcpy(&piece, &v, sizeof(piece));
    _mm512_stream_si512(static_cast<__m512i*>(dst), piece);
    return;
  }
#elif IFNAS_ISA_AVX2
  if (stream) {
    __m256i piece;
    std::memcpy(&piece, &v, sizeof(piece));
    _mm256_stream_si256(static_cast<__m256i*>(dst), piece);
    return;
  }
#elif defined(__SSE2__)
  if (stream) {
    __m128i piece;
    std::memcpy(&piece, &v, sizeof(piece));
    _mm_stream_si128(static_cast<__m128i*>(dst), piece);
    return;
  }
#endif
  std::memcpy(dst, &v, sizeof(v));
}

// Rounds one float32 register into bfloat16 bits (round to nearest even, as c10::BFloat16 does;
// NaN becomes the canonical quiet NaN).
inline Narrow16 round_bfloat16(const Bits32& bits) {
  const Bits32 rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
  const Bits32 quiet_nan = Bits32{} + 0x7fc0u;
  const Bits32 out = (bits & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded;
  return __builtin_convertvector(out, Narrow16);
}

// Rounds two float32 registers into one register of float16 bits (round to nearest even).
inline Packed16 round_half(const Step<Half>::Register& lo, const Step<Half>::Register& hi) {
#if IFNAS_ISA_AVX512
  __m512 lo_f, hi_f;
  std::memcpy(&lo_f, &lo, sizeof(lo_f));
  std::memcpy(&hi_f, &hi, sizeof(hi_f));
  const __m256i lo_h = _mm512_cvtps_ph(lo_f, _MM_FROUND_TO_NEAREST_INT);
  const __m256i hi_h = _mm512_cvtps_ph(hi_f, _MM_FROUND_TO_NEAREST_INT);
  const __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(lo_h), hi_h, 1);
#elif IFNAS_ISA_F16C
  __m256 lo_f, hi_f;
  std::memcpy(&lo_f, &lo, sizeof(lo_f));
  std::memcpy(&hi_f, &hi, sizeof(hi_f));
  const __m128i lo_h = _mm256_cvtps_ph(lo_f, _MM_FROUND_TO_NEAREST_INT);
  const __m128i hi_h = _mm256_cvtps_ph(hi_f, _MM_FROUND_TO_NEAREST_INT);
  const __m256i both = _mm256_set_m128i(hi_h, lo_h);
#else
  constexpr int n = Step<Half>::kLanes;
  uint16_t both[2 * n];
  for (int l = 0; l < n; ++l) {
    both[l] = float_to_half_bits(lo[l]);
    both[n + l] = float_to_half_bits(hi[l]);
  }
#endif
  Packed16 out;
  std::memcpy(&out, &both, sizeof(out));
  return out;
}

// Rounds one whole step once into T and writes it to dst, streaming when asked (dst then starts
// a cache line).
inline void store_step(float* dst, const Step<float>& v, bool stream) {
#pragma GCC unroll 8
  for (int r = 0; r < Step<float>::kRegisters; ++r) {
    write_register(dst + r * Step<float>::kLanes, v.reg[r], stream);
  }
}

inline void store_step(double* dst, const Step<double>& v, bool stream) {
#pragma GCC unroll 8
  for (int r = 0; r < Step<double>::kRegisters; ++r) {
    write_register(dst + r * Step<double>::kLanes, v.reg[r], stream);
  }
}

inline void store_step(BFloat16* dst, const Step<BFloat16>& v, bool stream) {
  using S = Step<BFloat16>;
#pragma GCC unroll 8
  for (int r = 0; r < S::kRegisters; r += 2) {
    Bits32 lo, hi;
    std::memcpy(&lo, &v.reg[r], sizeof(lo));
    std::memcpy(&hi, &v.reg[r + 1], sizeof(hi));
    write_register(dst + r * S::kLanes, concat(round_bfloat16(lo), round_bfloat16(hi)), stream);
  }
}

inline void store_step(Half* dst, const Step<Half>& v, bool stream) {
  using S = Step<Half>;
#pragma GCC unroll 8
  for (int r = 0; r < S::kRegisters; r += 2) {
    write_register(dst + r * S::kLanes, round_half(v.reg[r], v.reg[r + 1]), stream);
  }
}

// Writes the first count elements of a step: whole steps straight from registers, the end of a
// range through a staging line.
template <typename T>
inline void store_any(T* dst, const Step<T>& v, int count, bool stream) {
  if (count == kVec<T>) {
    store_step(dst, v, stream);
    return;
  }
  alignas(64) T staged[kVec<T>];
  store_step(staged, v, false);
  std::memcpy(dst, staged, count * sizeof(T));
}

// Orders this thread's streaming stores before whatever reads the output next.
inline void finish_stores(bool stream) {
#if defined(__SSE2__)
  if (stream) {
    _mm_sfence();
  }
#endif
}

// Asks for the line kPrefetchBytes ahead of `p` (harmless past the end: prefetches do not fault).
// With K streams to follow, the hardware prefetchers alone left the forward about 7% short of
// what it reaches with this; the backward gained nothing from it and does without.
constexpr int64_t kPrefetchBytes = 1024;

inline void prefetch_ahead(const void* p) {
  __builtin_prefetch(static_cast<const char*>(p) + kPrefetchBytes, 0, 3);
}

// ---------------------------------------------------------------------------------------------
// The two kernels.

// out[i] = sum_k weights[k] * inputs[k][i] for i in [begin, end), accumulated in acc_t<T> in
// input order. `stream` writes the output with streaming stores (aligned to 64 bytes).
template <typename T>
void forward_range(const T* const* inputs, const acc_t<T>* weights, int64_t num_inputs, T* out,
                   int64_t begin, int64_t end, bool stream) {
  constexpr int V = kVec<T>;
  stream = stream && kHasStreamingStores;

  for (int64_t i = begin; i < end; i += V) {
    const int count = static_cast<int>(min_of(V, end - i));
    prefetch_ahead(inputs[0] + i);
    Step<T> acc = scaled(weights[0], load_any(inputs[0] + i, count));
    for (int64_t k = 1; k < num_inputs; ++k) {
      prefetch_ahead(inputs[k] + i);
      add_scaled(acc, weights[k], load_any(inputs[k] + i, count));
    }
    store_any(out + i, acc, count, stream);
  }
  finish_stores(stream);
}

// For i in [begin, end): input_grads[k][i] = weights[k] * grad[i] (when input_grads is not
// null), and dots[k] += sum_i grad[i] * inputs[k][i] (when dots is not null). One pass: each
// gradient step is read once and used for all K inputs. The dot products run in V lanes per
// input, flushed through a fixed tree into float64 every kStepsPerFlush steps, so the result
// depends only on the data. `stream` writes the input gradients with streaming stores.
template <typename T>
void backward_range(const T* grad, const T* const* inputs, const acc_t<T>* weights,
                    int64_t num_inputs, T* const* input_grads, double* dots, int64_t begin,
                    int64_t end, bool stream) {
  using Acc = acc_t<T>;
  constexpr int V = kVec<T>;
  stream = stream && kHasStreamingStores;

  Step<T> stack_lanes[kStackInputs];
  Step<T>* heap_lanes = num_inputs > kStackInputs ? new Step<T>[num_inputs] : nullptr;
  Step<T>* lanes = heap_lanes != nullptr ? heap_lanes : stack_lanes;

  for (int64_t flush_start = begin; flush_start < end; flush_start += kStepsPerFlush * V) {
    const int64_t flush_end = min_of(end, flush_start + kStepsPerFlush * V);
    if (dots != nullptr) {
      for (int64_t k = 0; k < num_inputs; ++k) {
        lanes[k] = Step<T>{};
      }
    }

    for (int64_t i = flush_start; i < flush_end; i += V) {
      const int count = static_cast<int>(min_of(V, flush_end - i));
      const Step<T> g = load_any(grad + i, count);
      for (int64_t k = 0; k < num_inputs; ++k) {
        if (input_grads != nullptr) {
          store_any(input_grads[k] + i, scaled(weights[k], g), count, stream);
        }
        if (dots != nullptr) {
          multiply_add(lanes[k], g, load_any(inputs[k] + i, count));
        }
      }
    }

    if (dots != nullptr) {
      for (int64_t k = 0; k < num_inputs; ++k) {
        alignas(64) Acc lane[V];
        std::memcpy(lane, &lanes[k], sizeof(lane));
        for (int width = V / 2; width > 0; width /= 2) {
          for (int l = 0; l < width; ++l) {
            lane[l] += lane[l + width];
          }
        }
        dots[k] += static_cast<double>(lane[0]);
      }
    }
  }
  finish_stores(stream);
  delete[] heap_lanes;
}

#define IFNAS_STRINGIFY_(x) #x
#define IFNAS_STRINGIFY(x) IFNAS_STRINGIFY_(x)

KernelTable kernel_table() {
  return {IFNAS_STRINGIFY(IFNAS_CPU_ISA),
          {&forward_range<float>, &backward_range<float>},
          {&forward_range<double>, &backward_range<double>},
          {&forward_range<Half>, &backward_range<Half>},
          {&forward_range<BFloat16>, &backward_range<BFloat16>}};
}

}  // namespace ifnas::cpu::IFNAS_CPU_ISA
