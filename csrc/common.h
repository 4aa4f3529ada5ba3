// Argument checks and operand layouts shared by the CPU and CUDA glue (host code, ATen).
//
// The contract is the one of ifnas_kernels.weighted_sum (docs/kernels.md): K >= 1 tensors of one
// shape, dtype and device, a 1-D weight tensor of K floating elements on that device. A wrong
// argument raises ValueError or TypeError (TORCH_CHECK_VALUE / TORCH_CHECK_TYPE) naming it.
//
// Layout: the kernels read every operand as a flat array in one memory order, the order of the
// tensor they write. An operand stored in that order is used in place (any storage offset);
// any other operand (sliced, expanded, another memory format) is first copied into that order.

#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace ifnas {

inline bool is_supported_dtype(at::ScalarType dtype) {
  return dtype == at::kFloat || dtype == at::kHalf || dtype == at::kBFloat16 ||
         dtype == at::kDouble;
}

// float64 accumulates in float64, every other dtype in float32.
inline at::ScalarType acc_dtype(at::ScalarType dtype) {
  return dtype == at::kDouble ? at::kDouble : at::kFloat;
}

inline void check_weights(const at::Tensor& weights, int64_t num_inputs, const char* op) {
  TORCH_CHECK_VALUE(weights.defined(), op, ": weights is undefined");
  TORCH_CHECK_TYPE(is_supported_dtype(weights.scalar_type()), op,
                   ": weights must be float32, float16, bfloat16 or float64, got ",
                   weights.scalar_type());
  TORCH_CHECK_VALUE(weights.dim() == 1 && weights.numel() == num_inputs, op,
                    ": weights must be a 1-D tensor of ", num_inputs,
                    " elements (one per tensor), got shape ", weights.sizes());
}

// Checks `tensors` against each other and `weights` against them.
inline void check_inputs(at::TensorList tensors, const at::Tensor& weights,
                         c10::DeviceType device_type, const char* op) {
  TORCH_CHECK_VALUE(!tensors.empty(), op, ": tensors must hold at least one tensor, got none");
  const at::Tensor& first = tensors[0];
  TORCH_CHECK_VALUE(first.defined(), op, ": tensors[0] is undefined");
  TORCH_CHECK_TYPE(is_supported_dtype(first.scalar_type()), op,
                   ": tensors must be float32, float16, bfloat16 or float64, got ",
                   first.scalar_type());
  TORCH_CHECK_VALUE(first.device().type() == device_type, op, ": this kernel runs on ",
                    c10::DeviceTypeName(device_type), " tensors, got tensors on ", first.device());

  for (size_t k = 1; k < tensors.size(); ++k) {
    const at::Tensor& t = tensors[k];
    TORCH_CHECK_VALUE(t.defined(), op, ": tensors[", k, "] is undefined");
    TORCH_CHECK_VALUE(t.device() == first.device(), op, ": tensors[", k, "] is on ", t.device(),
                      " but tensors[0] is on ", first.device());
    TORCH_CHECK_TYPE(t.scalar_type() == first.scalar_type(), op, ": tensors[", k, "] is ",
                     t.scalar_type(), " but tensors[0] is ", first.scalar_type());
    TORCH_CHECK_VALUE(t.sizes() == first.sizes(), op, ": tensors[", k, "] has shape ", t.sizes(),
                      " but tensors[0] has shape ", first.sizes(), " (no broadcasting)");
  }

  check_weights(weights, static_cast<int64_t>(tensors.size()), op);
  TORCH_CHECK_VALUE(weights.device() == first.device(), op, ": weights is on ", weights.device(),
                    " but tensors are on ", first.device());
}

// Checks the arguments of the backward: `tensors` is empty when no weight gradient is wanted.
inline void check_backward_inputs(const at::Tensor& grad, at::TensorList tensors,
                                  const at::Tensor& weights, bool input_grads,
                                  c10::DeviceType device_type, const char* op) {
  TORCH_CHECK_VALUE(grad.defined(), op, ": grad is undefined");
  TORCH_CHECK_TYPE(is_supported_dtype(grad.scalar_type()), op,
                   ": grad must be float32, float16, bfloat16 or float64, got ",
                   grad.scalar_type());
  TORCH_CHECK_VALUE(grad.device().type() == device_type, op, ": this kernel runs on ",
                    c10::DeviceTypeName(device_type), " tensors, got grad on ", grad.device());
  TORCH_CHECK_VALUE(input_grads || !tensors.empty(), op,
                    ": nothing to compute: input_grads is false and tensors is empty");

  if (tensors.empty()) {
    TORCH_CHECK_VALUE(weights.defined() && weights.dim() == 1, op,
                      ": weights must be a 1-D tensor, got shape ", weights.sizes());
    check_weights(weights, weights.size(0), op);
    TORCH_CHECK_VALUE(weights.device() == grad.device(), op, ": weights is on ", weights.device(),
                      " but grad is on ", grad.device());
    return;
  }

  check_inputs(tensors, weights, device_type, op);
  const at::Tensor& first = tensors[0];
  TORCH_CHECK_VALUE(grad.device() == first.device(), op, ": grad is on ", grad.device(),
                    " but tensors are on ", first.device());
  TORCH_CHECK_TYPE(grad.scalar_type() == first.scalar_type(), op, ": grad is ", grad.scalar_type(),
                   " but tensors are ", first.scalar_type());
  TORCH_CHECK_VALUE(grad.sizes() == first.sizes(), op, ": grad has shape ", grad.sizes(),
                    " but tensors have shape ", first.sizes());
}

// Whether `x` stores its elements in the memory order of the dense tensor `ref`, so that both
// can be read as flat arrays of numel elements. Strides of size-1 dimensions do not matter.
inline bool has_layout_of(const at::Tensor& x, const at::Tensor& ref) {
  if (x.sizes() != ref.sizes()) {
    return false;
  }
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (x.size(d) > 1 && x.stride(d) != ref.stride(d)) {
      return false;
    }
  }
  return true;
}

// `x` itself when it is stored in the order of `ref`, else a copy in that order.
inline at::Tensor in_layout_of(const at::Tensor& x, const at::Tensor& ref) {
  return has_layout_of(x, ref) ? x : at::empty_like(ref).copy_(x);
}

// `x` itself when dense (no gaps, no overlaps), else a copy in its suggested memory format.
// This is the layout at::empty_like(x) gives, so fake kernels can predict it.
inline at::Tensor dense(const at::Tensor& x) {
  return x.is_non_overlapping_and_dense() ? x : x.contiguous(x.suggest_memory_format());
}

// Operands of one forward call, all stored in the order of `out`.
struct ForwardOperands {
  std::vector<at::Tensor> inputs;
  at::Tensor weights;  // contiguous, accumulation dtype
  at::Tensor out;
};

inline ForwardOperands forward_operands(at::TensorList tensors, const at::Tensor& weights) {
  ForwardOperands ops;
  ops.out = at::empty_like(tensors[0]);
  ops.inputs.reserve(tensors.size());
  for (const at::Tensor& t : tensors) {
    ops.inputs.push_back(in_layout_of(t, ops.out));
  }
  ops.weights = weights.to(acc_dtype(tensors[0].scalar_type())).contiguous();
  return ops;
}

// Operands of one backward call, all stored in the order of the (densified) incoming gradient.
// `inputs` is empty when no weight gradient is wanted, `input_grads` when no input gradients are.
struct BackwardOperands {
  at::Tensor grad;
  std::vector<at::Tensor> inputs;
  at::Tensor weights;  // contiguous, accumulation dtype
  std::vector<at::Tensor> input_grads;
};

inline BackwardOperands backward_operands(const at::Tensor& grad, at::TensorList tensors,
                                          const at::Tensor& weights, bool input_grads) {
  BackwardOperands ops;
  ops.grad = dense(grad);
  ops.inputs.reserve(tensors.size());
  for (const at::Tensor& t : tensors) {
    ops.inputs.push_back(in_layout_of(t, ops.grad));
  }
  ops.weights = weights.to(acc_dtype(grad.scalar_type())).contiguous();
  if (input_grads) {
    ops.input_grads.reserve(weights.numel());
    for (int64_t k = 0; k < weights.numel(); ++k) {
      ops.input_grads.push_back(at::empty_like(ops.grad));
    }
  }
  return ops;
}

// The weight gradient returned when `tensors` was empty (not requested): an empty tensor.
inline at::Tensor no_weight_grad(const at::Tensor& weights) {
  return at::empty({0}, weights.options());
}

}  // namespace ifnas
