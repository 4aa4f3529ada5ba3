// CUDA kernels of the fused weighted sum (host glue over weighted_sum.cu).

#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>
#include <vector>

namespace ifnas::cuda {

// As ifnas::cpu::weighted_sum, for CUDA tensors.
at::Tensor weighted_sum(at::TensorList tensors, const at::Tensor& weights);

// As ifnas::cpu::weighted_sum_backward, for CUDA tensors.
std::tuple<std::vector<at::Tensor>, at::Tensor> weighted_sum_backward(const at::Tensor& grad,
                                                                      at::TensorList tensors,
                                                                      const at::Tensor& weights,
                                                                      bool input_grads);

}  // namespace ifnas::cuda
