// torch ops over dense.h: rnnkit::matmul and rnnkit::linear (autograd is registered in ops.py).
#include <torch/library.h>

#include "dense.h"

namespace rnnkit {
namespace {

at::Tensor matmul(const at::Tensor& a, const at::Tensor& b) { return dense_mm(a, b); }

// x (N, I), weight (G, I), bias (G) -> x @ weight^T + bias (N, G)
at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const c10::optional<at::Tensor>& bias) {
  return dense_mm(x, weight.t(), bias);
}

bool onednn_usable() { return onednn_matmul_usable(); }

}  // namespace
}  // namespace rnnkit

TORCH_LIBRARY_FRAGMENT(rnnkit, m) {
  m.def("matmul(Tensor a, Tensor b) -> Tensor");
  m.def("linear(Tensor x, Tensor weight, Tensor? bias) -> Tensor");
  m.def("onednn_usable() -> bool");
}

TORCH_LIBRARY_IMPL(rnnkit, CPU, m) {
  m.impl("matmul", &rnnkit::matmul);
  m.impl("linear", &rnnkit::linear);
}

TORCH_LIBRARY_IMPL(rnnkit, CatchAll, m) { m.impl("onednn_usable", &rnnkit::onednn_usable); }
