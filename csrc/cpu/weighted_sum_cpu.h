// CPU kernels of the fused weighted sum (C++, OpenMP through at::parallel_for).

#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>
#include <vector>

namespace ifnas::cpu {

// sum_k weights[k] * tensors[k], accumulated in float32 (float64 for float64); the result has
// the layout of at::empty_like(tensors[0]).
at::Tensor weighted_sum(at::TensorList tensors, const at::Tensor& weights);

// Gradients of weighted_sum: (weights[k] * grad for every k, or [] when input_grads is false;
// sum(grad * tensors[k]) for every k in weights' dtype, or an empty tensor when tensors is
// empty). Input gradients have the layout of at::empty_like(grad).
std::tuple<std::vector<at::Tensor>, at::Tensor> weighted_sum_backward(const at::Tensor& grad,
                                                                      at::TensorList tensors,
                                                                      const at::Tensor& weights,
                                                                      bool input_grads);

// Instruction set of the loops this processor runs: "avx512", "avx2" or "baseline".
const char* isa();

}  // namespace ifnas::cpu
