// Python and dispatcher bindings of the compiled weighted-sum kernels.
//
// This file builds two extension modules (setup.py):
//   ifnas_kernels._C     CPU kernels (always built), ops ifnas_cpp::weighted_sum{,_backward}
//   ifnas_kernels._cuda  CUDA kernels (with IFNAS_WITH_CUDA), ops ifnas_cuda::weighted_sum{,...}
// Each module registers its kernels with the torch dispatcher in its own namespace, so that the
// two load independently, and exposes the same functions to Python through pybind11, with
// facts about the build. The public op, ifnas::weighted_sum with its fake kernel and autograd,
// is defined in Python (ifnas_kernels/_op.py) on top of these.

#include <torch/csrc/utils/pybind.h>
#include <torch/library.h>

#include <pybind11/stl.h>

#include <tuple>
#include <vector>

#if defined(IFNAS_WITH_CUDA)
#include "cuda/launch.h"
#include "cuda/weighted_sum_cuda.h"
namespace kernels = ifnas::cuda;
#else
#include "cpu/weighted_sum_cpu.h"
namespace kernels = ifnas::cpu;
#endif

// The CUDA architectures come as a bare comma-separated macro (setup.py), e.g. 8.0,9.0+PTX.
#define IFNAS_STRING_(...) #__VA_ARGS__
#define IFNAS_STRING(...) IFNAS_STRING_(__VA_ARGS__)

namespace {

constexpr const char* kForwardSchema = "weighted_sum(Tensor[] tensors, Tensor weights) -> Tensor";
constexpr const char* kBackwardSchema =
    "weighted_sum_backward(Tensor grad, Tensor[] tensors, Tensor weights, bool input_grads) -> "
    "(Tensor[], Tensor)";

at::Tensor forward(const std::vector<at::Tensor>& tensors, const at::Tensor& weights) {
  return kernels::weighted_sum(tensors, weights);
}

std::tuple<std::vector<at::Tensor>, at::Tensor> backward(const at::Tensor& grad,
                                                         const std::vector<at::Tensor>& tensors,
                                                         const at::Tensor& weights,
                                                         bool input_grads) {
  return kernels::weighted_sum_backward(grad, tensors, weights, input_grads);
}

}  // namespace

#if defined(IFNAS_WITH_CUDA)
TORCH_LIBRARY(ifnas_cuda, m) {
  m.def(kForwardSchema);
  m.def(kBackwardSchema);
}

TORCH_LIBRARY_IMPL(ifnas_cuda, CUDA, m) {
  m.impl("weighted_sum", &kernels::weighted_sum);
  m.impl("weighted_sum_backward", &kernels::weighted_sum_backward);
}
#else
TORCH_LIBRARY(ifnas_cpp, m) {
  m.def(kForwardSchema);
  m.def(kBackwardSchema);
}

TORCH_LIBRARY_IMPL(ifnas_cpp, CPU, m) {
  m.impl("weighted_sum", &kernels::weighted_sum);
  m.impl("weighted_sum_backward", &kernels::weighted_sum_backward);
}
#endif

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  namespace py = pybind11;
  m.doc() = "Fused weighted-sum kernels of ifnas_kernels; call them through the public op.";

  m.def("weighted_sum", &forward, py::arg("tensors"), py::arg("weights"),
        py::call_guard<py::gil_scoped_release>(),
        "sum_k weights[k] * tensors[k]; the layout of empty_like(tensors[0]).");
  m.def("weighted_sum_backward", &backward, py::arg("grad"), py::arg("tensors"), py::arg("weights"),
        py::arg("input_grads"), py::call_guard<py::gil_scoped_release>(),
        "(input gradients or [], weight gradient or an empty tensor when tensors is empty).");

#if defined(IFNAS_WITH_CUDA)
  m.attr("ops_namespace") = "ifnas_cuda";
  m.attr("cuda_version") = ifnas::cuda::compiled_cuda_version();
  m.attr("max_inputs_per_launch") = ifnas::cuda::kMaxInputs;
#if defined(IFNAS_CUDA_ARCHS)
  m.attr("cuda_arch_list") = IFNAS_STRING(IFNAS_CUDA_ARCHS);
#endif
#else
  m.attr("ops_namespace") = "ifnas_cpp";
  m.def("isa", &ifnas::cpu::isa,
        "Instruction set of the CPU loops chosen for this processor: avx512, avx2 or baseline.");
#endif
}
