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

#include <cstdint>
#include <cstring>

#include "cpu/dispatch.h"

#ifndef IFNAS_CPU_ISA
#error "define IFNAS_CPU_ISA before including cpu/kernel.h"
#endif

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

inline float bfloat16_bits_to_float(uint16_t h) {
  return float_of(uint32_t(h) << 16);
}

inline uint16_t float_to_bfloat16_bits(float value) {
  // Round to nearest even, as c10::BFloat16 does; NaN becomes the canonical quiet NaN.
  const uint32_t bits = bits_of(value);
  const uint16_t rounded = uint16_t((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
  return (bits & 0x7fffffffu) > 0x7f800000u ? uint16_t(0x7fc0) : rounded;
}

// Converts n elements of src into the float buffer dst.

// Loads N elements of T into acc_t<T>.
template <int N>
inline void load_vec(const float* src, float* dst) {
  std::memcpy(dst, src, N * sizeof(float));
}

template <int N>
inline void load_vec(const double* src, double* dst) {
  std::memcpy(dst, src, N * sizeof(double));
}

template <int N>
inline void load_vec(const BFloat16* src, float* dst) {
  for (int l = 0; l < N; ++l) {
    dst[l] = bfloat16_bits_to_float(src[l].bits);
  }
}

template <int N>
inline void load_vec(const Half* src, float* dst) {
#if IFNAS_ISA_AVX512
  // 512-bit conversions: 256-bit stores read back by 512-bit loads would stall.
  for (int l = 0; l < N; l += 16) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + l));
    _mm512_storeu_ps(dst + l, _mm512_cvtph_ps(h));
  }
#elif IFNAS_ISA_F16C
  for (int l = 0; l < N; l += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + l));
    _mm256_storeu_ps(dst + l, _mm256_cvtph_ps(h));
  }
#else
  for (int l = 0; l < N; ++l) {
    dst[l] = half_bits_to_float(src[l].bits);
  }
#endif
}

// Rounds N values of acc_t<T> into T.
template <int N>
inline void round_vec(const float* src, float* dst) {
  std::memcpy(dst, src, N * sizeof(float));
}

template <int N>
inline void round_vec(const double* src, double* dst) {
  std::memcpy(dst, src, N * sizeof(double));
}

template <int N>
inline void round_vec(const float* src, BFloat16* dst) {
  for (int l = 0; l < N; ++l) {
    dst[l].bits = float_to_bfloat16_bits(src[l]);
  }
}

template <int N>
inline void round_vec(const float* src, Half* dst) {
#if IFNAS_ISA_AVX512
  for (int l = 0; l < N; l += 16) {
    const __m256i h = _mm512_cvtps_ph(_mm512_loadu_ps(src + l), _MM_FROUND_TO_NEAREST_INT);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + l), h);
  }
#elif IFNAS_ISA_F16C
  for (int l = 0; l < N; l += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + l), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + l), h);
  }
#else
  for (int l = 0; l < N; ++l) {
    dst[l].bits = float_to_half_bits(src[l]);
  }
#endif
}

// ---------------------------------------------------------------------------------------------
// Stores. Outputs larger than the caches go out with non-temporal (streaming) stores: a plain
// store reads each destination line before writing it, one more pass over the output, and
// evicts inputs that are still to be read.

// Writes `Bytes` bytes (a multiple of 16) to `dst`, aligned to Bytes or to 64, bypassing the
// caches.
template <int Bytes>
inline void stream_store(void* dst, const void* src) {
  static_assert(Bytes % 16 == 0, "streaming stores move 16-byte pieces");
  char* d = static_cast<char*>(dst);
  const char* s = static_cast<const char*>(src);
  int offset = 0;
#if IFNAS_ISA_AVX512
  for (; offset + 64 <= Bytes; offset += 64) {
    _mm512_stream_si512(reinterpret_cast<__m512i*>(d + offset), _mm512_loadu_si512(s + offset));
  }
#endif
#if IFNAS_ISA_AVX2
  for (; offset + 32 <= Bytes; offset += 32) {
    _mm256_stream_si256(reinterpret_cast<__m256i*>(d + offset),
                        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + offset)));
  }
#endif
#if defined(__SSE2__)
  for (; offset + 16 <= Bytes; offset += 16) {
    _mm_stream_si128(reinterpret_cast<__m128i*>(d + offset),
                     _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + offset)));
  }
#endif
  std::memcpy(d + offset, s + offset, Bytes - offset);
}

// Whether this build has streaming stores at all.
constexpr bool kHasStreamingStores =
#if defined(__SSE2__)
    true;
#else
    false;
#endif

// Rounds kVec<T> accumulated values and writes them to dst[0 .. count), streaming when asked
// (and only for whole vectors, which start on a cache line).
template <typename T>
inline void store_vec(T* dst, const acc_t<T>* values, int count, bool stream) {
  alignas(64) T rounded[kVec<T>];
  round_vec<kVec<T>>(values, rounded);
  if (stream && count == kVec<T>) {
    stream_store<kVec<T> * sizeof(T)>(dst, rounded);
  } else {
    std::memcpy(dst, rounded, count * sizeof(T));
  }
}

// Orders this thread's streaming stores before whatever reads the output next.
inline void finish_stores(bool stream) {
#if defined(__SSE2__)
  if (stream) {
    _mm_sfence();
  }
#endif
}

// Loads count <= kVec<T> elements, zero-padded (the end of a range is not a whole vector).
template <typename T>
inline void load_any(const T* src, acc_t<T>* dst, int count) {
  if (count == kVec<T>) {
    load_vec<kVec<T>>(src, dst);
    return;
  }
  alignas(64) T padded[kVec<T>] = {};
  std::memcpy(padded, src, count * sizeof(T));
  load_vec<kVec<T>>(padded, dst);
}

// Elementwise steps on N values, written with GCC vector types: on arrays the compiler unrolls
// these 16-step loops before it vectorizes them and then emits scalar code. A vector type makes
// it one 512-bit operation (AVX-512), or two or four narrower ones (AVX2, SSE2).
template <typename Acc, int N>
struct Vector {
  typedef Acc type __attribute__((vector_size(N * sizeof(Acc))));
};

// dst = w * x
template <int N, typename Acc>
inline void scale(Acc* dst, const Acc* x, Acc w) {
  typename Vector<Acc, N>::type vx;
  std::memcpy(&vx, x, sizeof(vx));
  vx *= w;
  std::memcpy(dst, &vx, sizeof(vx));
}

// acc += w * x
template <int N, typename Acc>
inline void add_scaled(Acc* acc, const Acc* x, Acc w) {
  typename Vector<Acc, N>::type vacc, vx;
  std::memcpy(&vacc, acc, sizeof(vacc));
  std::memcpy(&vx, x, sizeof(vx));
  vacc += w * vx;
  std::memcpy(acc, &vacc, sizeof(vacc));
}

// acc += a * b
template <int N, typename Acc>
inline void multiply_add(Acc* acc, const Acc* a, const Acc* b) {
  typename Vector<Acc, N>::type vacc, va, vb;
  std::memcpy(&vacc, acc, sizeof(vacc));
  std::memcpy(&va, a, sizeof(va));
  std::memcpy(&vb, b, sizeof(vb));
  vacc += va * vb;
  std::memcpy(acc, &vacc, sizeof(vacc));
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
  using Acc = acc_t<T>;
  constexpr int V = kVec<T>;
  stream = stream && kHasStreamingStores;

  for (int64_t i = begin; i < end; i += V) {
    const int count = static_cast<int>(min_of(V, end - i));
    alignas(64) Acc acc[V];
    alignas(64) Acc x[V];
    prefetch_ahead(inputs[0] + i);
    load_any(inputs[0] + i, x, count);
    scale<V>(acc, x, weights[0]);
    for (int64_t k = 1; k < num_inputs; ++k) {
      prefetch_ahead(inputs[k] + i);
      load_any(inputs[k] + i, x, count);
      add_scaled<V>(acc, x, weights[k]);
    }
    store_vec(out + i, acc, count, stream);
  }
  finish_stores(stream);
}

// For i in [begin, end): input_grads[k][i] = weights[k] * grad[i] (when input_grads is not
// null), and dots[k] += sum_i grad[i] * inputs[k][i] (when dots is not null). One pass: each
// gradient vector is read once and used for all K inputs. The dot products run in V lanes
// per input, flushed through a fixed tree into float64 every kStepsPerFlush steps, so the
// result depends only on the data. `stream` writes the input gradients with streaming stores.
template <typename T>
void backward_range(const T* grad, const T* const* inputs, const acc_t<T>* weights,
                    int64_t num_inputs, T* const* input_grads, double* dots, int64_t begin,
                    int64_t end, bool stream) {
  using Acc = acc_t<T>;
  constexpr int V = kVec<T>;
  stream = stream && kHasStreamingStores;

  alignas(64) Acc stack_lanes[kStackInputs * V];
  Acc* heap_lanes = num_inputs > kStackInputs ? new Acc[num_inputs * V] : nullptr;
  Acc* lanes = heap_lanes != nullptr ? heap_lanes : stack_lanes;

  for (int64_t flush_start = begin; flush_start < end; flush_start += kStepsPerFlush * V) {
    const int64_t flush_end = min_of(end, flush_start + kStepsPerFlush * V);
    if (dots != nullptr) {
      for (int64_t j = 0; j < num_inputs * V; ++j) {
        lanes[j] = 0;
      }
    }

    for (int64_t i = flush_start; i < flush_end; i += V) {
      const int count = static_cast<int>(min_of(V, flush_end - i));
      alignas(64) Acc g[V];
      alignas(64) Acc x[V];
      alignas(64) Acc scaled[V];
      load_any(grad + i, g, count);

      for (int64_t k = 0; k < num_inputs; ++k) {
        if (input_grads != nullptr) {
          scale<V>(scaled, g, weights[k]);
          store_vec(input_grads[k] + i, scaled, count, stream);
        }
        if (dots != nullptr) {
          load_any(inputs[k] + i, x, count);
          multiply_add<V>(lanes + k * V, g, x);
        }
      }
    }

    if (dots != nullptr) {
      for (int64_t k = 0; k < num_inputs; ++k) {
        Acc* lane = lanes + k * V;
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
