// CPU entry points of the fused weighted sum: argument checks, layouts, and the split of the
// elements into fixed chunks that run on torch's intra-op threads (OpenMP, at::parallel_for, so
// torch.set_num_threads applies). The loops themselves are in kernel.h.
//
// Determinism: the weight gradient is summed per chunk (kChunk elements, a constant), then over
// chunks in index order, so repeated calls give bitwise-equal results for any thread count.

#include "cpu/weighted_sum_cpu.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "common.h"
#include "cpu/dispatch.h"

namespace ifnas::cpu {

namespace {

// The kernels' storage type for each ATen scalar type.
template <typename scalar_t>
struct StorageType {
  using type = scalar_t;
};

template <>
struct StorageType<c10::Half> {
  using type = Half;
};

template <>
struct StorageType<c10::BFloat16> {
  using type = BFloat16;
};

template <typename T>
const T* data_of(const at::Tensor& t) {
  return reinterpret_cast<const T*>(t.const_data_ptr());
}

template <typename T>
T* mutable_data_of(at::Tensor& t) {
  return reinterpret_cast<T*>(t.mutable_data_ptr());
}

// Calls that write more than this go out with streaming (non-temporal) stores: such outputs do
// not stay in the caches until their reader comes anyway, and plain stores would first read
// every destination line. IFNAS_CPU_STREAMING_BYTES overrides it (for measurements).
int64_t streaming_threshold() {
  static const int64_t bytes = [] {
    const char* value = std::getenv("IFNAS_CPU_STREAMING_BYTES");
    return value != nullptr ? std::atoll(value) : int64_t{4} << 20;
  }();
  return bytes;
}

int64_t num_chunks(int64_t numel) {
  return (numel + kChunk - 1) / kChunk;
}

template <typename Fn>
void for_each_chunk(int64_t numel, const Fn& fn) {
  at::parallel_for(0, num_chunks(numel), 1, [&](int64_t first, int64_t last) {
    for (int64_t chunk = first; chunk < last; ++chunk) {
      fn(chunk, chunk * kChunk, std::min(numel, (chunk + 1) * kChunk));
    }
  });
}

}  // namespace

const char* isa() {
  return kernel_table().isa;
}

at::Tensor weighted_sum(at::TensorList tensors, const at::Tensor& weights) {
  check_inputs(tensors, weights, c10::DeviceType::CPU, "ifnas weighted_sum (cpp)");
  ForwardOperands ops = forward_operands(tensors, weights);
  const int64_t numel = ops.out.numel();
  const int64_t num_inputs = static_cast<int64_t>(ops.inputs.size());

  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, ops.out.scalar_type(), "weighted_sum_cpu", [&] {
        using T = typename StorageType<scalar_t>::type;
        std::vector<const T*> inputs;
        for (const at::Tensor& x : ops.inputs) {
          inputs.push_back(data_of<T>(x));
        }
        const acc_t<T>* w = data_of<acc_t<T>>(ops.weights);
        T* out = mutable_data_of<T>(ops.out);
        const auto forward = kernel_table().get(static_cast<T*>(nullptr)).forward;
        const bool stream = numel * static_cast<int64_t>(sizeof(T)) >= streaming_threshold();

        for_each_chunk(numel, [&](int64_t, int64_t begin, int64_t end) {
          forward(inputs.data(), w, num_inputs, out, begin, end, stream);
        });
      });
  return ops.out;
}

std::tuple<std::vector<at::Tensor>, at::Tensor> weighted_sum_backward(const at::Tensor& grad,
                                                                      at::TensorList tensors,
                                                                      const at::Tensor& weights,
                                                                      bool input_grads) {
  check_backward_inputs(grad, tensors, weights, input_grads, c10::DeviceType::CPU,
                        "ifnas weighted_sum_backward (cpp)");
  BackwardOperands ops = backward_operands(grad, tensors, weights, input_grads);
  const int64_t numel = ops.grad.numel();
  const int64_t num_inputs = weights.numel();
  const bool weight_grad = !ops.inputs.empty();

  // One row of K partial dot products per chunk, summed over chunks in index order below.
  std::vector<double> partials(weight_grad ? num_chunks(numel) * num_inputs : 0, 0.0);

  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, ops.grad.scalar_type(), "weighted_sum_backward_cpu", [&] {
        using T = typename StorageType<scalar_t>::type;
        std::vector<const T*> inputs;
        for (const at::Tensor& x : ops.inputs) {
          inputs.push_back(data_of<T>(x));
        }
        std::vector<T*> grads;
        for (at::Tensor& g : ops.input_grads) {
          grads.push_back(mutable_data_of<T>(g));
        }
        const T* g = data_of<T>(ops.grad);
        const acc_t<T>* w = data_of<acc_t<T>>(ops.weights);
        const auto backward = kernel_table().get(static_cast<T*>(nullptr)).backward;
        const int64_t written = input_grads ? num_inputs * numel * int64_t{sizeof(T)} : 0;
        const bool stream = written >= streaming_threshold();

        for_each_chunk(numel, [&](int64_t chunk, int64_t begin, int64_t end) {
          double* dots = weight_grad ? partials.data() + chunk * num_inputs : nullptr;
          backward(g, inputs.data(), w, num_inputs, input_grads ? grads.data() : nullptr, dots,
                   begin, end, stream);
        });
      });

  if (!weight_grad) {
    return {std::move(ops.input_grads), no_weight_grad(weights)};
  }
  at::Tensor weights_grad = at::zeros({num_inputs}, weights.options().dtype(at::kDouble));
  double* sums = weights_grad.mutable_data_ptr<double>();
  for (size_t i = 0; i < partials.size(); ++i) {
    sums[i % num_inputs] += partials[i];
  }
  return {std::move(ops.input_grads), weights_grad.to(weights.scalar_type())};
}

}  // namespace ifnas::cpu
