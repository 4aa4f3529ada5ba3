// CUDA kernels of the fused weighted sum, free of torch headers (the glue is
// weighted_sum_cuda.cpp). Compiles with nvcc for the extension and with NVRTC for the Volta
// (compute_70) check; the host launchers are left out under NVRTC.
//
// Bytes per element: forward reads K inputs and writes one output (one launch for up to
// kMaxInputs inputs, their pointers passed by value). Backward reads the gradient once and each
// input once, writes K input gradients and, per block, K partial dot products; a second launch
// sums the partials of each input in a fixed order. Results are deterministic without atomics.

#include "cuda/launch.h"

#if !defined(__CUDACC_RTC__)
#include <cuda_runtime.h>
#endif

namespace ifnas::cuda::kernels {

constexpr int kThreads = 256;
constexpr int kItems = 4;  // elements per thread, kThreads apart so that accesses coalesce
constexpr int kTile = kThreads * kItems;
constexpr int kWarps = kThreads / 32;

// Storage types: 16-bit floats are converted with PTX instructions rather than cuda_fp16.h, so
// that NVRTC needs no headers.
struct alignas(2) Half {
  uint16_t bits;
};

struct alignas(2) BFloat16 {
  uint16_t bits;
};

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

__device__ __forceinline__ float to_acc(float x) {
  return x;
}
__device__ __forceinline__ double to_acc(double x) {
  return x;
}

__device__ __forceinline__ float to_acc(Half x) {
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(x.bits));
  return f;
}

__device__ __forceinline__ float to_acc(BFloat16 x) {
  return __uint_as_float(static_cast<uint32_t>(x.bits) << 16);
}

template <typename T>
__device__ __forceinline__ T from_acc(acc_t<T> x);

template <>
__device__ __forceinline__ float from_acc<float>(float x) {
  return x;
}

template <>
__device__ __forceinline__ double from_acc<double>(double x) {
  return x;
}

template <>
__device__ __forceinline__ Half from_acc<Half>(float x) {
  Half h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h.bits) : "f"(x));
  return h;
}

template <>
__device__ __forceinline__ BFloat16 from_acc<BFloat16>(float x) {
  BFloat16 b;
#if __CUDA_ARCH__ >= 800
  asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(b.bits) : "f"(x));
#else
  // Round to nearest even by hand before Ampere; NaN stays a quiet NaN.
  const uint32_t u = __float_as_uint(x);
  b.bits = (u & 0x7fffffffu) > 0x7f800000u
               ? static_cast<uint16_t>(0x7fc0)
               : static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
#endif
  return b;
}

template <typename T>
struct ForwardParams {
  const T* inputs[kMaxInputs];
  const acc_t<T>* weights;
  const acc_t<T>* acc_in;
  acc_t<T>* acc_out;
  T* out;
  int64_t numel;
  int num_inputs;
};

template <typename T>
struct BackwardParams {
  const T* grad;
  const T* inputs[kMaxInputs];
  const acc_t<T>* weights;
  T* input_grads[kMaxInputs];
  acc_t<T>* partials;
  int64_t numel;
  int num_inputs;
};

// One tile of kTile elements per block; every thread keeps kItems running sums in registers.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(const __grid_constant__ ForwardParams<T> p) {
  using Acc = acc_t<T>;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * kTile + threadIdx.x;

  Acc acc[kItems];
#pragma unroll
  for (int i = 0; i < kItems; ++i) {
    const int64_t idx = first + i * kThreads;
    acc[i] = (p.acc_in != nullptr && idx < p.numel) ? p.acc_in[idx] : Acc(0);
  }

#pragma unroll 4
  for (int k = 0; k < p.num_inputs; ++k) {
    const Acc w = p.weights[k];
    const T* x = p.inputs[k];
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
      const int64_t idx = first + i * kThreads;
      if (idx < p.numel) {
        acc[i] += w * to_acc(x[idx]);
      }
    }
  }

#pragma unroll
  for (int i = 0; i < kItems; ++i) {
    const int64_t idx = first + i * kThreads;
    if (idx < p.numel) {
      if (p.acc_out != nullptr) {
        p.acc_out[idx] = acc[i];
      } else {
        p.out[idx] = from_acc<T>(acc[i]);
      }
    }
  }
}

// Sum over the 32 lanes of a warp in a fixed order; lane 0 holds the result.
template <typename Acc>
__device__ __forceinline__ Acc warp_sum(Acc value) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) {
    value += __shfl_down_sync(0xffffffffu, value, offset);
  }
  return value;
}

// Writes the input gradients of one tile and the tile's partial dot product for every input:
// partials[k * gridDim.x + blockIdx.x]. The gradient tile stays in registers for all K inputs.
template <typename T, bool kInputGrads, bool kWeightGrad>
__global__ void __launch_bounds__(kThreads)
    backward_kernel(const __grid_constant__ BackwardParams<T> p) {
  using Acc = acc_t<T>;
  __shared__ Acc warp_sums[kWeightGrad ? kMaxInputs : 1][kWarps];
  const int64_t first = static_cast<int64_t>(blockIdx.x) * kTile + threadIdx.x;
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;

  Acc g[kItems];
#pragma unroll
  for (int i = 0; i < kItems; ++i) {
    const int64_t idx = first + i * kThreads;
    g[i] = idx < p.numel ? to_acc(p.grad[idx]) : Acc(0);
  }

  for (int k = 0; k < p.num_inputs; ++k) {
    const Acc w = p.weights[k];
    Acc dot = 0;
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
      const int64_t idx = first + i * kThreads;
      if (idx < p.numel) {
        if (kInputGrads) {
          p.input_grads[k][idx] = from_acc<T>(w * g[i]);
        }
        if (kWeightGrad) {
          dot += g[i] * to_acc(p.inputs[k][idx]);
        }
      }
    }
    if (kWeightGrad) {
      dot = warp_sum(dot);
      if (lane == 0) {
        warp_sums[k][warp] = dot;
      }
    }
  }

  if (kWeightGrad) {
    __syncthreads();
    for (int k = threadIdx.x; k < p.num_inputs; k += kThreads) {
      Acc sum = 0;
#pragma unroll
      for (int w = 0; w < kWarps; ++w) {
        sum += warp_sums[k][w];
      }
      p.partials[static_cast<int64_t>(k) * gridDim.x + blockIdx.x] = sum;
    }
  }
}

// weights_grad[k] = sum over blocks of partials[k, :], one block per input, in a fixed order:
// a strided sum per thread, then a tree in shared memory.
template <typename Acc>
__global__ void __launch_bounds__(kThreads)
    reduce_partials_kernel(const Acc* partials, int64_t num_blocks, Acc* weights_grad) {
  __shared__ Acc sums[kThreads];
  const Acc* row = partials + static_cast<int64_t>(blockIdx.x) * num_blocks;

  Acc sum = 0;
  for (int64_t j = threadIdx.x; j < num_blocks; j += kThreads) {
    sum += row[j];
  }
  sums[threadIdx.x] = sum;
  __syncthreads();

  for (int width = kThreads / 2; width > 0; width /= 2) {
    if (threadIdx.x < width) {
      sums[threadIdx.x] += sums[threadIdx.x + width];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    weights_grad[blockIdx.x] = sums[0];
  }
}

}  // namespace ifnas::cuda::kernels

#if !defined(__CUDACC_RTC__)

namespace ifnas::cuda {

namespace {

using kernels::kThreads;
using kernels::kTile;

int64_t num_tiles(int64_t numel) {
  return (numel + kTile - 1) / kTile;
}

const char* last_error() {
  const cudaError_t status = cudaGetLastError();
  return status == cudaSuccess ? nullptr : cudaGetErrorString(status);
}

template <typename T>
const char* forward(const ForwardLaunch& launch) {
  using Acc = kernels::acc_t<T>;
  kernels::ForwardParams<T> p{};
  for (int k = 0; k < launch.num_inputs; ++k) {
    p.inputs[k] = static_cast<const T*>(launch.inputs[k]);
  }
  p.weights = static_cast<const Acc*>(launch.weights);
  p.acc_in = static_cast<const Acc*>(launch.acc_in);
  p.acc_out = static_cast<Acc*>(launch.acc_out);
  p.out = static_cast<T*>(launch.out);
  p.numel = launch.numel;
  p.num_inputs = launch.num_inputs;

  const auto stream = static_cast<cudaStream_t>(launch.stream);
  kernels::forward_kernel<T><<<num_tiles(launch.numel), kThreads, 0, stream>>>(p);
  return last_error();
}

template <typename T, bool kInputGrads, bool kWeightGrad>
void launch_backward_kernel(const kernels::BackwardParams<T>& p, int64_t blocks,
                            cudaStream_t stream) {
  kernels::backward_kernel<T, kInputGrads, kWeightGrad><<<blocks, kThreads, 0, stream>>>(p);
}

template <typename T>
const char* backward(const BackwardLaunch& launch) {
  using Acc = kernels::acc_t<T>;
  const bool input_grads = launch.input_grads[0] != nullptr;
  const bool weight_grad = launch.inputs[0] != nullptr;
  kernels::BackwardParams<T> p{};
  p.grad = static_cast<const T*>(launch.grad);
  for (int k = 0; k < launch.num_inputs; ++k) {
    p.inputs[k] = static_cast<const T*>(launch.inputs[k]);
    p.input_grads[k] = static_cast<T*>(launch.input_grads[k]);
  }
  p.weights = static_cast<const Acc*>(launch.weights);
  p.partials = static_cast<Acc*>(launch.partials);
  p.numel = launch.numel;
  p.num_inputs = launch.num_inputs;

  const auto stream = static_cast<cudaStream_t>(launch.stream);
  const int64_t blocks = num_tiles(launch.numel);
  if (blocks == 0) {
    // Nothing to read; the reduction below still writes zero weight gradients.
  } else if (input_grads && weight_grad) {
    launch_backward_kernel<T, true, true>(p, blocks, stream);
  } else if (input_grads) {
    launch_backward_kernel<T, true, false>(p, blocks, stream);
  } else {
    launch_backward_kernel<T, false, true>(p, blocks, stream);
  }
  if (const char* error = last_error()) {
    return error;
  }

  if (weight_grad) {
    kernels::reduce_partials_kernel<Acc><<<launch.num_inputs, kThreads, 0, stream>>>(
        p.partials, blocks, static_cast<Acc*>(launch.weights_grad));
  }
  return last_error();
}

}  // namespace

int64_t backward_num_blocks(int64_t numel) {
  return num_tiles(numel);
}

const char* launch_forward(const ForwardLaunch& launch) {
  if (launch.numel == 0) {
    return nullptr;
  }
  switch (launch.dtype) {
    case DType::kFloat32:
      return forward<float>(launch);
    case DType::kFloat16:
      return forward<kernels::Half>(launch);
    case DType::kBFloat16:
      return forward<kernels::BFloat16>(launch);
    case DType::kFloat64:
      return forward<double>(launch);
  }
  return "ifnas weighted_sum (cuda): unknown dtype";
}

const char* launch_backward(const BackwardLaunch& launch) {
  switch (launch.dtype) {
    case DType::kFloat32:
      return backward<float>(launch);
    case DType::kFloat16:
      return backward<kernels::Half>(launch);
    case DType::kBFloat16:
      return backward<kernels::BFloat16>(launch);
    case DType::kFloat64:
      return backward<double>(launch);
  }
  return "ifnas weighted_sum_backward (cuda): unknown dtype";
}

int compiled_cuda_version() {
  return CUDART_VERSION;
}

}  // namespace ifnas::cuda

#endif  // !defined(__CUDACC_RTC__)
