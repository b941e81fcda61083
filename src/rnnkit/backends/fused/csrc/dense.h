// Dense matrix products for the large GEMMs around the recurrence: the input projection over
// all steps, its input gradient and the weight gradients (weight_gradient). Which code runs
// them is the dense engine (below), chosen per host:
// * packed: the packed GEMM of gemm.h for weight-shaped products, and dense_mm for every other
//   shape, which sends large float32 products to the oneDNN matmul inside libtorch (when it is
//   there and agrees with at::mm on a probe), otherwise at::mm. On AMD CPUs MKL takes its AVX2
//   path (~85 GFLOP/s per core, against 160-200 for the packed GEMM with AVX-512).
// * mkl: at::mm (MKL, or whatever BLAS torch was built with) for all of them, except
//   projections from at most 128 inputs with a weight no larger than x, or under 2M
//   multiply-adds (rnnkit::linear; a batch-1 layer's), which stay on the packed GEMM
//   (dense.cpp, packable). On an Intel CPU with AVX-512, MKL runs its
//   AVX-512 kernels and was ahead of the packed GEMM at every size measured (1M to 5G
//   multiply-adds, 1 and 2 threads) on the input gradient (1.0-1.4x) and the weight gradients
//   (1.1-2x), and on large projections (~1.05x).
// The recurrent products inside the time loop stay on the packed GEMM on every host: per step
// they are too small for a library call (see gemm.h). Under CPU bfloat16 autocast they may run
// as AMX tile products instead (gemm_amx.h), and the weight gradients as weight_gradient_bf16.
#pragma once

#include <ATen/ATen.h>

#include <ATen/Context.h>
#include <ATen/Parallel.h>

#include <atomic>

#include "buffer_pool.h"
#include "common.h"
#include "gemm.h"

namespace at {
namespace native {
// Exported by libtorch_cpu (not a public API): declared weak so that a torch without it still
// loads this library, and the address test below picks at::mm instead.
__attribute__((weak)) void mkldnn_matmul(const at::Tensor& mat1, const at::Tensor& mat2,
                                         const at::Tensor& result, float beta, float alpha);
}  // namespace native
}  // namespace at

namespace rnnkit {

inline bool onednn_matmul_usable() {
  static const bool usable = [] {
    if (&at::native::mkldnn_matmul == nullptr) return false;
    try {  // trust it only if it computes what at::mm does on a small probe
      // Fixed values, not randn: drawing from torch's global generator here, on the first large
      // product of a process, shifted every later random draw (dropout masks), so a resumed
      // training run no longer matched an uninterrupted one.
      const at::Tensor a = at::arange(37 * 19, at::kFloat).mul_(0.37).sin_().view({37, 19});
      const at::Tensor b = at::arange(19 * 23, at::kFloat).mul_(0.53).cos_().view({19, 23});
      at::Tensor out = at::empty({37, 23});
      at::native::mkldnn_matmul(a, b, out, 0.0f, 1.0f);
      return at::allclose(out, at::mm(a, b), 1e-4, 1e-4);
    } catch (...) {
      return false;
    }
  }();
  return usable;
}

// ---- the dense engine ----------------------------------------------------------------------
enum class DenseEngine : int64_t { kPacked = 0, kMkl = 1 };

// MKL dispatches its AVX-512 kernels on Intel CPUs only; on AMD ones (Zen 4 and 5 included) it
// takes its AVX2 path. So the host rule is: Intel, AVX-512 and a torch built with MKL -> mkl.
// Other architectures have no MKL and keep the packed engine.
inline DenseEngine host_dense_engine() {
  static const DenseEngine engine = [] {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    const bool intel_avx512 = cpu_is_intel() && __builtin_cpu_supports("avx512f");
#else
    const bool intel_avx512 = false;
#endif
    return intel_avx512 && at::hasMKL() ? DenseEngine::kMkl : DenseEngine::kPacked;
  }();
  return engine;
}

// The engine in use: the host rule unless set_dense_engine chose one (benchmarks compare them
// in one process). One setting per process, read at every product.
inline std::atomic<int64_t>& dense_engine_override() {
  static std::atomic<int64_t> chosen{-1};  // -1: follow the host rule
  return chosen;
}
inline DenseEngine dense_engine() {
  const int64_t chosen = dense_engine_override().load(std::memory_order_relaxed);
  return chosen < 0 ? host_dense_engine() : static_cast<DenseEngine>(chosen);
}

// out = beta_init + a @ b, where beta_init is `init` (broadcast to the result) or zero.
inline at::Tensor dense_mm(const at::Tensor& a, const at::Tensor& b,
                           const c10::optional<at::Tensor>& init = c10::nullopt) {
  const bool has_init = init.has_value() && init->defined();
  // oneDNN costs ~40 us per call on top of the arithmetic; it pays from ~16M multiply-adds.
  const bool large = a.size(0) * a.size(1) * b.size(1) >= (int64_t(1) << 24);
  at::Tensor out = pooled_empty({a.size(0), b.size(1)}, a.options());
  if (has_init) out.copy_(init->expand({a.size(0), b.size(1)}));
  if (a.scalar_type() == at::kFloat && large && dense_engine() == DenseEngine::kPacked &&
      onednn_matmul_usable()) {
    at::native::mkldnn_matmul(a, b, out, has_init ? 1.0f : 0.0f, 1.0f);
    return out;
  }
  return has_init ? at::addmm_out(out, out, a, b) : at::mm_out(out, a, b);
}

// Whether a product of `multiply_adds` with N result columns is worth the packed GEMM by its
// size: not below 64k (at::mm's fixed cost is lower), and below 1M only where N fills whole
// panels. Packing and blocking cost more per multiply-add in a small product, and a partial
// panel computes zero columns. Measured on Zen 4, one thread, 4 paired runs (at::mm time /
// packed time): N a multiple of 32 gained 1.04-1.35x (100 x 32 -> 128 projection 1.11x, its
// input gradient 1.17x, weight gradient 1.28x; 20 rows 1.14-1.35x); N = 16 or 48 lost
// (0.85-0.91x for the input and weight gradients of 100 x 16 -> 64 and 100 x 48 -> 144).
inline bool packed_pays(int64_t multiply_adds, int64_t N, at::ScalarType dtype) {
  if (multiply_adds < (int64_t(1) << 16)) return false;
  const int64_t panel = dtype == at::kDouble ? PackedMatrix<double>::NR : PackedMatrix<float>::NR;
  return multiply_adds >= (int64_t(1) << 20) || N % panel == 0;
}

// True when a is a transposed view of a contiguous matrix: column-major, columns lda apart.
inline bool column_major(const at::Tensor& a) {
  return a.dim() == 2 && a.stride(0) == 1 && a.stride(1) >= a.size(0) && a.size(0) > 1;
}

// a (M, K) @ b (K, N) for a column-major a: the weight gradients dW = dG^T X, with dG (K, M)
// over all T x B rows, its rows lda apart (K large, M x N small; the recurrences pad their gate
// gradients' rows, common.h's gradient_row_stride). The packed GEMM reads dG in place
// (on AMD, oneDNN and MKL ran these at ~60 GFLOP/s, the packed kernel at ~85-95); b is packed
// once and the rows of the result are split across threads. Small products (packed_pays), and
// every product under the mkl engine, go to dense_mm.
inline at::Tensor weight_gradient(const at::Tensor& a, const at::Tensor& b) {
  const int64_t M = a.size(0), K = a.size(1), N = b.size(1);
  if (!column_major(a) || !packed_pays(M * K * N, N, a.scalar_type()) ||
      dense_engine() == DenseEngine::kMkl)
    return dense_mm(a, b);
  at::Tensor out = pooled_empty({M, N}, a.options());
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "rnnkit_weight_gradient", [&] {
    PackedMatrix<scalar_t> packed;
    packed.pack(b.data_ptr<scalar_t>(), K, N, b.stride(0), b.stride(1), /*by_all_threads=*/true);
    const scalar_t* a_ptr = a.data_ptr<scalar_t>();
    const int64_t lda = a.stride(1);
    scalar_t* c = out.data_ptr<scalar_t>();
    // one block of rows per thread, whole row blocks each
    const int64_t threads = std::max<int64_t>(1, at::get_num_threads());
    const int64_t grain = std::max<int64_t>(kRowBlock, (M / threads + kRowBlock - 1) / kRowBlock * kRowBlock);
    at::parallel_for(0, M, grain, [&](int64_t r0, int64_t r1) {
      gemm_blocked<scalar_t, true>(r1 - r0, a_ptr + r0, lda, packed, c + r0 * N, N, 0,
                                   packed.panels, /*overwrite=*/true, nullptr);
    });
  });
  return out;
}

// The weight gradient under CPU bfloat16 autocast (the recurrence's bf16=True): both operands
// rounded to bfloat16 and one oneDNN product over all T x B rows, summed in float32 and rounded
// to bfloat16 once at the end (torch.nn's layers under autocast sum T bfloat16 step gradients
// instead). The operands may come in bfloat16 already (common.h, GradientRows and
// gather_previous_bf16). Returned in float32, the parameters' dtype.
inline at::Tensor weight_gradient_bf16(const at::Tensor& a, const at::Tensor& b) {
  return at::mm(a.to(at::kBFloat16), b.to(at::kBFloat16)).to(at::kFloat);
}

// weight_gradient or, with bf16, weight_gradient_bf16.
inline at::Tensor weight_gradient(const at::Tensor& a, const at::Tensor& b, bool bf16) {
  return bf16 ? weight_gradient_bf16(a, b) : weight_gradient(a, b);
}

}  // namespace rnnkit
