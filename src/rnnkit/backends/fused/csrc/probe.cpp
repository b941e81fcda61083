// Machine probes: the FMA peak this CPU reaches with the build's vector width (benchmarks), and
// what the kernels' plans read of the host (l2_cache_bytes and cpu_is_intel, common.h;
// units_over_rows_limits, unit_team.h).
#include <torch/library.h>

#include <chrono>

#include "common.h"
#include "unit_team.h"

namespace rnnkit {
namespace {

// Independent FMA chains in registers (no memory traffic); returns multiply-adds * 2 per second
// summed over the threads used.
double fma_peak(int64_t iterations, int64_t threads) {
  std::vector<double> rates(threads, 0.0);
  auto work = [&](int64_t first, int64_t last) {
    for (int64_t worker = first; worker < last; ++worker) {
      const auto start = std::chrono::steady_clock::now();
#if RNNKIT_AVX512
      __m512 acc[12];
      const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(1e-4f);
      for (int j = 0; j < 12; ++j) acc[j] = _mm512_set1_ps((float)j);
      for (int64_t i = 0; i < iterations; ++i)
        for (int j = 0; j < 12; ++j) acc[j] = _mm512_fmadd_ps(acc[j], a, b);
      float sink = 0.f;
      for (int j = 0; j < 12; ++j) sink += _mm512_reduce_add_ps(acc[j]);
      const double flops = 2.0 * 16 * 12 * iterations;
#else
      float acc[12][8];
      for (int j = 0; j < 12; ++j)
        for (int l = 0; l < 8; ++l) acc[j][l] = (float)j;
      for (int64_t i = 0; i < iterations; ++i)
        for (int j = 0; j < 12; ++j)
          for (int l = 0; l < 8; ++l) acc[j][l] = acc[j][l] * 0.999f + 1e-4f;
      float sink = 0.f;
      for (int j = 0; j < 12; ++j) sink += acc[j][0];
      const double flops = 2.0 * 8 * 12 * iterations;
#endif
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      rates[worker] = flops / seconds + (sink == 12345.f ? 1e-30 : 0.0);  // keep sink alive
    }
  };
  if (threads <= 1) {
    work(0, 1);
  } else {
    at::parallel_for(0, threads, 1, work);
  }
  double total = 0.0;
  for (double rate : rates) total += rate;
  return total;
}

// GFLOP/s of the packed GEMM used by the recurrences, C (M x N) += A (M x K) B (K x N).
double gemm_rate(int64_t M, int64_t K, int64_t N, int64_t repeats) {
  std::vector<float> A(M * K, 0.5f), Bm(K * N, 0.25f), C(M * N, 0.f);
  PackedMatrix<float> packed;
  packed.pack(Bm.data(), K, N, N, 1);
  gemm(M, A.data(), K, packed, C.data(), N);
  const auto start = std::chrono::steady_clock::now();
  for (int64_t r = 0; r < repeats; ++r) gemm(M, A.data(), K, packed, C.data(), N);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return 2.0 * M * K * N * repeats / seconds / 1e9 + (C[0] == 12345.f ? 1e-30 : 0.0);
}

}  // namespace
}  // namespace rnnkit

TORCH_LIBRARY_FRAGMENT(rnnkit, m) {
  m.def("fma_peak(int iterations, int threads) -> float");
  m.def("simd_width() -> int");
  m.def("l2_cache_bytes() -> int");
  m.def("cpu_is_intel() -> bool");
  m.def("units_over_rows_limits() -> int[]");
  m.def("gemm_rate(int M, int K, int N, int repeats) -> float");
  m.def("amx_bf16_usable() -> bool");
  m.def("bf16_products_kernel() -> str");
}

TORCH_LIBRARY_IMPL(rnnkit, CompositeExplicitAutograd, m) {}

TORCH_LIBRARY_IMPL(rnnkit, CatchAll, m) {
  m.impl("fma_peak", &rnnkit::fma_peak);
  m.impl("gemm_rate", &rnnkit::gemm_rate);
  m.impl("amx_bf16_usable", []() -> bool { return rnnkit::amx_bf16_usable(); });
  m.impl("bf16_products_kernel", []() -> std::string { return rnnkit::bf16_products_kernel(); });
  m.impl("simd_width", []() -> int64_t { return RNNKIT_AVX512 ? 512 : RNNKIT_AVX2 ? 256 : 0; });
  m.impl("l2_cache_bytes", []() -> int64_t { return rnnkit::l2_cache_bytes(); });
  m.impl("cpu_is_intel", []() -> bool { return rnnkit::cpu_is_intel(); });
  m.impl("units_over_rows_limits", []() -> std::vector<int64_t> {
    const rnnkit::UnitsOverRowsLimits limits = rnnkit::units_over_rows_limits();
    return {limits.rows_per_thread, limits.rows_per_thread_past_l2};
  });
}
