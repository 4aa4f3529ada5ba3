// CPU loops of the fused weighted sum, free of ATen so that each instruction-set variant
// (kernel_avx512.cpp, kernel_avx2.cpp, kernel_base.cpp) compiles them under its own target.
//
// The includer includes cpu/dtypes.h and the standard headers below first (so that they stay
// compiled for the baseline), then switches the target with `#pragma GCC target` (x86 variants),
// defines IFNAS_CPU_ISA (the namespace of this variant) and includes this file, which defines
// that variant's kernel_table(). Every function here
// works on one dense range [begin, end) of elements that all operands share; the glue in
// weighted_sum_cpu.cpp splits the tensors into fixed chunks and runs them on torch's threads.
//
// Bytes per element of a chunk: forward reads K inputs and writes one output; backward reads the
// incoming gradient and K inputs, and writes K input gradients. Everything else stays in L1.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "cpu/dispatch.h"

#ifndef IFNAS_CPU_ISA
#error "define IFNAS_CPU_ISA before including cpu/kernel.h"
#endif

namespace ifnas::cpu::IFNAS_CPU_ISA {

// Elements per block: the unit of work inside a chunk. A block of the accumulator and of one
// converted input (float32) take 8 KiB of L1 together.
constexpr int64_t kBlock = 1024;

// Independent partial sums of a dot product; 16 float32 lanes fill one AVX-512 register.
constexpr int kLanes = 16;

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
inline void load_block(const Half* src, float* dst, int64_t n) {
  int64_t i = 0;
#if defined(__F16C__)
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
  }
#endif
  for (; i < n; ++i) {
    dst[i] = half_bits_to_float(src[i].bits);
  }
}

inline void load_block(const BFloat16* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    dst[i] = bfloat16_bits_to_float(src[i].bits);
  }
}

// Rounds n floats of src into dst.
inline void store_block(const float* src, Half* dst, int64_t n) {
  int64_t i = 0;
#if defined(__F16C__)
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), h);
  }
#endif
  for (; i < n; ++i) {
    dst[i].bits = float_to_half_bits(src[i]);
  }
}

inline void store_block(const float* src, BFloat16* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    dst[i].bits = float_to_bfloat16_bits(src[i]);
  }
}

// Returns the block as acc_t<T>: the input itself when no conversion is needed, else `buffer`
// filled with the converted values.
template <typename T>
inline const acc_t<T>* acc_view(const T* src, acc_t<T>* buffer, int64_t n) {
  if constexpr (std::is_same_v<T, acc_t<T>>) {
    return src;
  } else {
    load_block(src, buffer, n);
    return buffer;
  }
}

// ---------------------------------------------------------------------------------------------
// Memory traffic: streaming stores for large outputs, prefetches of the next block.

#if defined(__AVX512F__)
constexpr int64_t kStreamBytes = 64;
#elif defined(__AVX__)
constexpr int64_t kStreamBytes = 32;
#else
constexpr int64_t kStreamBytes = 16;
#endif

// Copies `bytes` from `src` (a block in L1) to `dst`. With `stream`, aligned whole vectors go out
// as non-temporal stores: the destination lines are not read first (a plain store would read
// each line before writing it, one extra pass over the output) and do not evict the inputs.
inline void write_out(void* dst, const void* src, int64_t bytes, bool stream) {
  char* d = static_cast<char*>(dst);
  const char* s = static_cast<const char*>(src);
#if defined(__SSE2__)
  if (stream) {
    const int64_t misaligned = static_cast<int64_t>(reinterpret_cast<uintptr_t>(d) % kStreamBytes);
    const int64_t head = std::min(bytes, misaligned == 0 ? 0 : kStreamBytes - misaligned);
    std::memcpy(d, s, head);
    d += head;
    s += head;
    bytes -= head;
    for (; bytes >= kStreamBytes; bytes -= kStreamBytes, d += kStreamBytes, s += kStreamBytes) {
#if defined(__AVX512F__)
      _mm512_stream_si512(reinterpret_cast<__m512i*>(d), _mm512_loadu_si512(s));
#elif defined(__AVX__)
      _mm256_stream_si256(reinterpret_cast<__m256i*>(d),
                          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s)));
#else
      _mm_stream_si128(reinterpret_cast<__m128i*>(d),
                       _mm_loadu_si128(reinterpret_cast<const __m128i*>(s)));
#endif
    }
  }
#endif
  std::memcpy(d, s, bytes);
}

// Orders the streaming stores of this thread before whatever reads the output next.
inline void finish_writes(bool stream) {
#if defined(__SSE2__)
  if (stream) {
    _mm_sfence();
  }
#endif
}

// Asks for the `bytes` after `p` to be brought into L2 while the current block is computed.
inline void prefetch(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t offset = 0; offset < bytes; offset += 64) {
    __builtin_prefetch(c + offset, 0, 1);
  }
}

// ---------------------------------------------------------------------------------------------
// Elementwise steps on one block, written so that the compiler vectorizes them.

template <typename Acc>
inline void scale(Acc* __restrict dst, const Acc* __restrict x, Acc w, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    dst[i] = w * x[i];
  }
}

template <typename Acc>
inline void add_scaled(Acc* __restrict acc, const Acc* __restrict x, Acc w, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    acc[i] += w * x[i];
  }
}

// Four inputs in one pass over the accumulator, added in order k, k+1, k+2, k+3 as the
// one-at-a-time loop would.
template <typename Acc>
inline void add_scaled4(Acc* __restrict acc, const Acc* __restrict x0, const Acc* __restrict x1,
                        const Acc* __restrict x2, const Acc* __restrict x3, const Acc* w,
                        int64_t n) {
  const Acc w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
  for (int64_t i = 0; i < n; ++i) {
    Acc a = acc[i];
    a += w0 * x0[i];
    a += w1 * x1[i];
    a += w2 * x2[i];
    a += w3 * x3[i];
    acc[i] = a;
  }
}

// Dot product in a fixed order: kLanes strided partial sums, then a fixed pairwise tree, so the
// result depends only on the data, never on threads or timing.
template <typename Acc>
inline Acc dot(const Acc* __restrict a, const Acc* __restrict b, int64_t n) {
  Acc lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      lanes[l] += a[i + l] * b[i + l];
    }
  }
  for (int l = 0; i < n; ++i, ++l) {
    lanes[l] += a[i] * b[i];
  }

  for (int width = kLanes / 2; width > 0; width /= 2) {
    for (int l = 0; l < width; ++l) {
      lanes[l] += lanes[l + width];
    }
  }
  return lanes[0];
}

// ---------------------------------------------------------------------------------------------
// The two kernels.

// out[i] = sum_k weights[k] * inputs[k][i] for i in [begin, end), accumulated in acc_t<T>.
// `stream` writes the output with non-temporal stores (for outputs larger than the caches).
template <typename T>
void forward_range(const T* const* inputs, const acc_t<T>* weights, int64_t num_inputs, T* out,
                   int64_t begin, int64_t end, bool stream) {
  using Acc = acc_t<T>;
  constexpr bool kConvert = !std::is_same_v<T, Acc>;
  alignas(64) Acc acc[kBlock];
  alignas(64) Acc buffers[4][kConvert ? kBlock : 1];
  alignas(64) T rounded[kConvert ? kBlock : 1];

  for (int64_t start = begin; start < end; start += kBlock) {
    const int64_t n = std::min(kBlock, end - start);
    const int64_t next = std::min(kBlock, end - start - n);
    for (int64_t k = 0; k < num_inputs; ++k) {
      prefetch(inputs[k] + start + n, next * static_cast<int64_t>(sizeof(T)));
    }

    scale(acc, acc_view(inputs[0] + start, buffers[0], n), weights[0], n);
    int64_t k = 1;
    for (; k + 4 <= num_inputs; k += 4) {
      const Acc* x[4];
      for (int j = 0; j < 4; ++j) {
        x[j] = acc_view(inputs[k + j] + start, buffers[j], n);
      }
      add_scaled4(acc, x[0], x[1], x[2], x[3], weights + k, n);
    }
    for (; k < num_inputs; ++k) {
      add_scaled(acc, acc_view(inputs[k] + start, buffers[0], n), weights[k], n);
    }

    if constexpr (kConvert) {
      store_block(acc, rounded, n);
      write_out(out + start, rounded, n * static_cast<int64_t>(sizeof(T)), stream);
    } else {
      write_out(out + start, acc, n * static_cast<int64_t>(sizeof(T)), stream);
    }
  }
  finish_writes(stream);
}

// For i in [begin, end): input_grads[k][i] = weights[k] * grad[i] (when input_grads is not
// null), and dots[k] += sum_i grad[i] * inputs[k][i] (when dots is not null). One pass: the
// gradient block is read once and reused for all K inputs. `stream` writes the input gradients
// with non-temporal stores.
template <typename T>
void backward_range(const T* grad, const T* const* inputs, const acc_t<T>* weights,
                    int64_t num_inputs, T* const* input_grads, double* dots, int64_t begin,
                    int64_t end, bool stream) {
  using Acc = acc_t<T>;
  constexpr bool kConvert = !std::is_same_v<T, Acc>;
  alignas(64) Acc grad_buffer[kConvert ? kBlock : 1];
  alignas(64) Acc input_buffer[kConvert ? kBlock : 1];
  alignas(64) Acc scaled[kBlock];
  alignas(64) T rounded[kConvert ? kBlock : 1];

  for (int64_t start = begin; start < end; start += kBlock) {
    const int64_t n = std::min(kBlock, end - start);
    const int64_t next_bytes = std::min(kBlock, end - start - n) * static_cast<int64_t>(sizeof(T));
    prefetch(grad + start + n, next_bytes);
    if (dots != nullptr) {
      for (int64_t k = 0; k < num_inputs; ++k) {
        prefetch(inputs[k] + start + n, next_bytes);
      }
    }

    const Acc* g = acc_view(grad + start, grad_buffer, n);
    for (int64_t k = 0; k < num_inputs; ++k) {
      if (input_grads != nullptr) {
        scale(scaled, g, weights[k], n);
        const int64_t bytes = n * static_cast<int64_t>(sizeof(T));
        if constexpr (kConvert) {
          store_block(scaled, rounded, n);
          write_out(input_grads[k] + start, rounded, bytes, stream);
        } else {
          write_out(input_grads[k] + start, scaled, bytes, stream);
        }
      }
      if (dots != nullptr) {
        const Acc* x = acc_view(inputs[k] + start, input_buffer, n);
        dots[k] += static_cast<double>(dot(g, x, n));
      }
    }
  }
  finish_writes(stream);
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
