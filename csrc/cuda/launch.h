// Launch interface of the CUDA kernels in weighted_sum.cu.
//
// Plain C++: the host glue (weighted_sum_cuda.cpp) includes it without CUDA headers, and the .cu
// file includes it without torch headers. NVRTC (tests/kernels/test_sm70_nvrtc.py) compiles the
// .cu file too; it has no standard headers, hence the fixed-width types below.

#pragma once

#if defined(__CUDACC_RTC__)
using int64_t = long long;
using uint16_t = unsigned short;
using uint32_t = unsigned int;
#else
#include <cstdint>
#endif

namespace ifnas::cuda {

enum class DType : int { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2, kFloat64 = 3 };

// Inputs per launch. Pointers travel by value in the kernel parameters (one launch for all of
// them); the glue splits a larger K into groups of at most kMaxInputs.
constexpr int kMaxInputs = 64;

// out = acc_in + sum_k weights[k] * inputs[k]; written to acc_out (accumulation dtype) when it
// is not null, else rounded to `out` (dtype). acc_in may be null (start from zero).
struct ForwardLaunch {
  DType dtype;
  int num_inputs;
  int64_t numel;
  const void* inputs[kMaxInputs];
  const void* weights;  // num_inputs values, accumulation dtype, device memory
  const void* acc_in;
  void* acc_out;
  void* out;
  void* stream;  // cudaStream_t
};

// input_grads[k] = weights[k] * grad (when input_grads[0] is not null) and
// weights_grad[k] = sum(grad * inputs[k]) (when inputs[0] is not null), in one launch that also
// writes per-block partial sums, then a fixed-order reduction launch: deterministic, no atomics.
struct BackwardLaunch {
  DType dtype;
  int num_inputs;
  int64_t numel;
  const void* grad;
  const void* inputs[kMaxInputs];
  const void* weights;  // num_inputs values, accumulation dtype, device memory
  void* input_grads[kMaxInputs];
  void* partials;      // num_inputs x backward_num_blocks(numel), accumulation dtype
  void* weights_grad;  // num_inputs values, accumulation dtype
  void* stream;
};

#if !defined(__CUDACC_RTC__)
// Blocks of the backward launch, i.e. partial sums per input.
int64_t backward_num_blocks(int64_t numel);

// Each returns nullptr on success, else the CUDA error message.
const char* launch_forward(const ForwardLaunch& launch);
const char* launch_backward(const BackwardLaunch& launch);

// CUDA runtime version the kernels were compiled with (e.g. 13000).
int compiled_cuda_version();
#endif

}  // namespace ifnas::cuda
