// torch ops for the dense products around the recurrence (autograd in autograd.cpp, fake functions in ops.py).
//
// rnnkit::linear (x @ W^T + b for all steps) and rnnkit::matmul. When the right-hand side is a
// weight (small next to the left-hand side, whose rows are contiguous) the product runs on the
// packed GEMM of gemm.h, rows split across threads; a transposed left-hand side (the weight
// gradients grad^T @ x) goes to weight_gradient (dense.h); other shapes to dense_mm (oneDNN or
// at::mm). Under the mkl dense engine (dense.h) dense_mm takes all but small projections.
#include <torch/library.h>

#include <string>

#include "common.h"
#include "dense.h"

namespace rnnkit {
namespace {

// out (M, N) = a (M, K) @ B + bias, with B given by (src, stride_k, stride_n) and bias N values
// or null; rows of a contiguous. out is only written. Each thread packs its own B up to
// BlockWeight's size limit, else one copy is shared (common.h), as in the recurrences' row blocks.
template <typename T>
void packed_product(const at::Tensor& a, const T* src, int64_t K, int64_t N, int64_t stride_k,
                    int64_t stride_n, const T* bias, at::Tensor& out) {
  const int64_t M = a.size(0), lda = a.stride(0);
  const T* a_ptr = a.data_ptr<T>();
  T* c = out.data_ptr<T>();
  const BlockWeight<T> weight(WeightSource<T>(src, K, N, stride_k, stride_n, /*use_bf16=*/false));
  const int64_t grain = std::max<int64_t>(kRowBlock, kParallelWork / std::max<int64_t>(1, K * N));
  at::parallel_for(0, M, grain, [&](int64_t r0, int64_t r1) {
    std::optional<RecurrentWeight<T>> own;
    const PackedMatrix<T>& packed = weight.in_block(own).full;
    gemm_assign(r1 - r0, a_ptr + r0 * lda, lda, packed, c + r0 * N, N, 0, packed.panels, bias);
  });
}

// Whether a @ B runs on the packed GEMM, B being (K x rhs_cols) with rhs_elements values:
// * not for small products (packed_pays, dense.h) or under one row block of a: at::mm is
//   faster there;
// * not when B is larger than a (a weight bigger than the batch of rows it multiplies) and
//   the product has 16M multiply-adds or more: oneDNN's matmul uses B without a packed copy and
//   ran level or ahead (100 rows, 256 x 1024: 313 vs 318 us; 512 x 2048: 1.20 vs 1.46 ms).
//   Below 16M dense_mm would take at::mm, MKL's AVX2 path, which the packed GEMM beats
//   1.5-2x even with B larger than a (100 rows x 128 x 512, the input projection of an LSTM
//   with H = 128 at B = 1, T = 100: 148 -> 81 us; its input gradient 155 -> 69 us).
// Under the mkl engine (see dense.h) at::mm runs all of them but one kind: input projections
// (`projection`, rnnkit::linear) of at most kDepthPerBlock inputs whose weight is not larger
// than x, or whose product is small (kSmallProjection). With one depth block the packed GEMM
// writes each C block once, bias included, and was 3-20% ahead of MKL's addmm (1600 rows x 64
// -> 64: 68 vs 75 us; 6400 x 128 -> 384: 4.19 vs 5.04 ms); from 256 inputs MKL led by 6-24%.
// MKL also led where the weight is the larger (B = 1: 100 rows x 128 -> 512, 2 threads: 47 vs
// 71 us) and on the input and weight gradients at every size (1.05-2x), except in small
// projections (below).
// A projection this small runs on the packed GEMM under the mkl engine even when its weight is
// larger than x: a batch-1 layer's projection over T = 100 steps, where MKL's addmm costs a
// fixed few microseconds more (the bias is first copied into every row of the result) and,
// with two threads, splits a product too small to share. rnnkit::linear, packed vs MKL (Intel
// host without AMX, family 6 model 207, each side alternating in one process, medians of 11):
// 100 rows x 32 -> 128 (0.4M multiply-adds) 9.3 vs 12.3 us on one thread, 8.4 vs 17.7 on two;
// 100 x 64 -> 256 (1.6M) 26.9 vs 29.5 and 19.9 vs 32.1; 100 x 96 -> 384 (3.7M) 55.2 vs 57.5
// and 42.3 vs 43.1 (level); 100 x 128 -> 512 (6.6M) 94.0 vs 95.8 and 67.8 vs 62.0 (MKL ahead).
constexpr int64_t kSmallProjection = int64_t(1) << 21;

bool packable(const at::Tensor& a, int64_t rhs_elements, int64_t rhs_cols, bool projection) {
  if (a.dim() != 2 || a.stride(1) != 1 || a.size(0) < kRowBlock) return false;
  const int64_t multiply_adds = a.size(0) * a.size(1) * rhs_cols;
  if (!packed_pays(multiply_adds, rhs_cols, a.scalar_type())) return false;
  if (dense_engine() == DenseEngine::kMkl)
    return projection && a.size(1) <= kDepthPerBlock &&
           (rhs_elements <= a.numel() || multiply_adds < kSmallProjection);
  const bool onednn = a.scalar_type() == at::kFloat && onednn_matmul_usable();
  return rhs_elements <= a.numel() || multiply_adds < (int64_t(1) << 24) || !onednn;
}

at::Tensor matmul(const at::Tensor& a, const at::Tensor& b) {
  // checked here: the packed GEMM reads both by raw pointer with the sizes of b
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(0),
              "rnnkit::matmul: a must be (M, K) and b (K, N); got ", a.sizes(), " and ", b.sizes());
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), "rnnkit::matmul: a and b must have one dtype; "
              "got ", a.scalar_type(), " and ", b.scalar_type());
  if (column_major(a)) return weight_gradient(a, b);
  if (!packable(a, b.numel(), b.size(1), /*projection=*/false)) return dense_mm(a, b);
  at::Tensor out = pooled_empty({a.size(0), b.size(1)}, a.options());
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "rnnkit_matmul", [&] {
    packed_product<scalar_t>(a, b.data_ptr<scalar_t>(), b.size(0), b.size(1), b.stride(0),
                             b.stride(1), static_cast<const scalar_t*>(nullptr), out);
  });
  return out;
}

// Leading dims flattened: (..., I) -> (N, I). Here, below autograd, rather than in Python: a
// view of a tensor that requires grad is an autograd node, built in forward and run in
// backward, and the two views around a layer's projection were ~12 us of a 124 us LSTM layer
// forward at batch 1 (H = 32, T = 100).
at::Tensor rows_of(const at::Tensor& x) { return x.dim() == 2 ? x : x.reshape({-1, x.size(-1)}); }

// Output sizes (..., N) for an input (..., K).
std::vector<int64_t> with_last(const at::Tensor& x, int64_t N) {
  std::vector<int64_t> sizes(x.sizes().begin(), x.sizes().end());
  sizes.back() = N;
  return sizes;
}

// x (..., I), weight (G, I), bias (G) -> x @ weight^T + bias (..., G)
at::Tensor linear(const at::Tensor& x_any, const at::Tensor& weight,
                  const c10::optional<at::Tensor>& bias) {
  TORCH_CHECK(x_any.dim() >= 2, "rnnkit::linear: x must be (..., I) with at least 2 dims; got ",
              x_any.dim());
  // checked here: the packed GEMM reads x, weight and bias by raw pointer with weight's sizes
  TORCH_CHECK(weight.dim() == 2 && weight.size(1) == x_any.size(-1),
              "rnnkit::linear: weight must be (G, I) for x (..., I); got ", weight.sizes(),
              " for x ", x_any.sizes());
  TORCH_CHECK(!bias.has_value() || !bias->defined() ||
                  (bias->dim() == 1 && bias->size(0) == weight.size(0)),
              "rnnkit::linear: bias must be (G,) for weight (G, I); got ", bias->sizes());
  TORCH_CHECK(weight.scalar_type() == x_any.scalar_type() &&
                  (!bias.has_value() || !bias->defined() ||
                   bias->scalar_type() == x_any.scalar_type()),
              "rnnkit::linear: x, weight and bias must have one dtype; got ", x_any.scalar_type(),
              ", ", weight.scalar_type(), " and ",
              bias.has_value() && bias->defined() ? c10::toString(bias->scalar_type()) : "no bias");
  const at::Tensor x = rows_of(x_any);
  const int64_t M = x.size(0), N = weight.size(0);
  at::Tensor out;
  if (!packable(x, weight.numel(), N, /*projection=*/true)) {
    out = dense_mm(x, weight.t(), bias);
  } else {
    out = pooled_empty({M, N}, x.options());
    const at::Tensor b = bias.has_value() && bias->defined() ? bias->contiguous() : at::Tensor();
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnkit_linear", [&] {
      packed_product<scalar_t>(x, weight.data_ptr<scalar_t>(), weight.size(1), N,
                               weight.stride(1), weight.stride(0),
                               b.defined() ? b.data_ptr<scalar_t>() : nullptr, out);
    });
  }
  // _unsafe_view: the result is the op's own tensor, not marked as a view of a temporary.
  return x_any.dim() == 2 ? out : at::_unsafe_view(out, with_last(x_any, N));
}

bool onednn_usable() { return onednn_matmul_usable(); }

// The dense engine by name: "packed" or "mkl" (dense.h).
constexpr const char* kEngineNames[] = {"packed", "mkl"};

std::string dense_engine_name() { return kEngineNames[static_cast<int64_t>(dense_engine())]; }

std::string host_dense_engine_name() { return kEngineNames[static_cast<int64_t>(host_dense_engine())]; }

// name: "packed", "mkl", or "auto" to follow the host rule again.
void set_dense_engine(const std::string& name) {
  int64_t chosen = -1;
  for (int64_t i = 0; i < 2; ++i)
    if (name == kEngineNames[i]) chosen = i;
  TORCH_CHECK(chosen >= 0 || name == "auto", "rnnkit: unknown dense engine '", name,
              "'; use 'auto', 'packed' or 'mkl'");
  dense_engine_override().store(chosen, std::memory_order_relaxed);
}

}  // namespace
}  // namespace rnnkit

TORCH_LIBRARY_FRAGMENT(rnnkit, m) {
  m.def("matmul(Tensor a, Tensor b) -> Tensor");
  m.def("linear(Tensor x, Tensor weight, Tensor? bias) -> Tensor");
  m.def("onednn_usable() -> bool");
  m.def("dense_engine() -> str");
  m.def("host_dense_engine() -> str");
  m.def("set_dense_engine(str name) -> ()");
}

TORCH_LIBRARY_IMPL(rnnkit, CPU, m) {
  m.impl("matmul", &rnnkit::matmul);
  m.impl("linear", &rnnkit::linear);
}

TORCH_LIBRARY_IMPL(rnnkit, CatchAll, m) {
  m.impl("onednn_usable", &rnnkit::onednn_usable);
  m.impl("dense_engine", &rnnkit::dense_engine_name);
  m.impl("host_dense_engine", &rnnkit::host_dense_engine_name);
  m.impl("set_dense_engine", &rnnkit::set_dense_engine);
}
