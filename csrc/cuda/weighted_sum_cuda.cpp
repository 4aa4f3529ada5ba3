// CUDA entry points of the fused weighted sum: argument checks, layouts (common.h), device and
// stream, and the split of K inputs into launches of at most kMaxInputs. Only c10's CUDA headers
// are used here (stream and device guard), not ATen's, which need the full CUDA toolkit.

#include "cuda/weighted_sum_cuda.h"

#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <vector>

#include "common.h"
#include "cuda/launch.h"

namespace ifnas::cuda {

namespace {

DType dtype_of(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat:
      return DType::kFloat32;
    case at::kHalf:
      return DType::kFloat16;
    case at::kBFloat16:
      return DType::kBFloat16;
    case at::kDouble:
      return DType::kFloat64;
    default:
      TORCH_CHECK_TYPE(false, "ifnas weighted_sum (cuda): unsupported dtype ", t.scalar_type());
  }
}

void check_launch(const char* error, const char* op) {
  TORCH_CHECK(error == nullptr, op, ": CUDA error: ", error);
}

// Address of element `k` of a contiguous accumulation-dtype tensor.
const void* element_ptr(const at::Tensor& t, int64_t k) {
  return static_cast<const char*>(t.const_data_ptr()) + k * t.element_size();
}

void* mutable_element_ptr(at::Tensor& t, int64_t k) {
  return static_cast<char*>(t.mutable_data_ptr()) + k * t.element_size();
}

}  // namespace

at::Tensor weighted_sum(at::TensorList tensors, const at::Tensor& weights) {
  constexpr const char* op = "ifnas weighted_sum (cuda)";
  check_inputs(tensors, weights, c10::DeviceType::CUDA, op);
  const c10::cuda::CUDAGuard device_guard(tensors[0].device());
  ForwardOperands ops = forward_operands(tensors, weights);
  const int64_t num_inputs = static_cast<int64_t>(ops.inputs.size());
  const int64_t numel = ops.out.numel();

  // More than kMaxInputs inputs: running sums in the accumulation dtype between launches.
  at::Tensor running;
  if (num_inputs > kMaxInputs) {
    running = at::empty_like(ops.out, ops.out.options().dtype(ops.weights.scalar_type()));
  }

  for (int64_t start = 0; start < num_inputs; start += kMaxInputs) {
    const int64_t count = std::min<int64_t>(kMaxInputs, num_inputs - start);
    const bool last = start + count == num_inputs;
    ForwardLaunch launch{};
    launch.dtype = dtype_of(ops.out);
    launch.num_inputs = static_cast<int>(count);
    launch.numel = numel;
    for (int64_t k = 0; k < count; ++k) {
      launch.inputs[k] = ops.inputs[start + k].const_data_ptr();
    }
    launch.weights = element_ptr(ops.weights, start);
    launch.acc_in = start == 0 ? nullptr : running.const_data_ptr();
    launch.acc_out = last ? nullptr : running.mutable_data_ptr();
    launch.out = ops.out.mutable_data_ptr();
    launch.stream = c10::cuda::getCurrentCUDAStream().stream();
    check_launch(launch_forward(launch), op);
  }
  return ops.out;
}

std::tuple<std::vector<at::Tensor>, at::Tensor> weighted_sum_backward(const at::Tensor& grad,
                                                                      at::TensorList tensors,
                                                                      const at::Tensor& weights,
                                                                      bool input_grads) {
  constexpr const char* op = "ifnas weighted_sum_backward (cuda)";
  check_backward_inputs(grad, tensors, weights, input_grads, c10::DeviceType::CUDA, op);
  const c10::cuda::CUDAGuard device_guard(grad.device());
  BackwardOperands ops = backward_operands(grad, tensors, weights, input_grads);
  const int64_t num_inputs = weights.numel();
  const bool weight_grad = !ops.inputs.empty();

  at::Tensor partials;
  at::Tensor weights_grad;
  if (weight_grad) {
    const at::TensorOptions acc_options = ops.weights.options();
    partials = at::empty({num_inputs, backward_num_blocks(ops.grad.numel())}, acc_options);
    weights_grad = at::empty({num_inputs}, acc_options);
  }

  // Inputs beyond kMaxInputs go to further launches, each reading the gradient again.
  for (int64_t start = 0; start < num_inputs; start += kMaxInputs) {
    const int64_t count = std::min<int64_t>(kMaxInputs, num_inputs - start);
    BackwardLaunch launch{};
    launch.dtype = dtype_of(ops.grad);
    launch.num_inputs = static_cast<int>(count);
    launch.numel = ops.grad.numel();
    launch.grad = ops.grad.const_data_ptr();
    for (int64_t k = 0; k < count; ++k) {
      launch.inputs[k] = weight_grad ? ops.inputs[start + k].const_data_ptr() : nullptr;
      launch.input_grads[k] = input_grads ? ops.input_grads[start + k].mutable_data_ptr() : nullptr;
    }
    launch.weights = element_ptr(ops.weights, start);
    if (weight_grad) {
      launch.partials = partials[start].mutable_data_ptr();
      launch.weights_grad = mutable_element_ptr(weights_grad, start);
    }
    launch.stream = c10::cuda::getCurrentCUDAStream().stream();
    check_launch(launch_backward(launch), op);
  }

  if (!weight_grad) {
    return {std::move(ops.input_grads), no_weight_grad(weights)};
  }
  return {std::move(ops.input_grads), weights_grad.to(weights.scalar_type())};
}

}  // namespace ifnas::cuda
