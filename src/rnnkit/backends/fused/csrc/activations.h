// Vectorized activations over arrays: sigmoid and tanh, for float and double. No ATen here, so
// the streaming stepper (a plain CPython module) can use them too.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "gemm.h"

#if RNNKIT_AVX512 || RNNKIT_AVX2
#include <sleef.h>  // float64 activations; torch's libtorch_cpu exports these symbols
#endif

namespace rnnkit {

// ---- activations over arrays (in place or src -> dst) --------------------------------------
// e^r ~ c5 r^5 + ... + c1 r + c0 on [-ln2/2, ln2/2], coefficients from c5 down (Horner order):
// the minimax polynomial for the relative error (7.5e-8), by the Remez exchange in float64,
// rounded to float32.
constexpr float kExpPolynomial[6] = {8.297654800e-03f, 4.191538319e-02f, 1.666757464e-01f,
                                     4.999889433e-01f, 9.999997020e-01f, 1.000000119e+00f};
#if RNNKIT_AVX512
// float32: exp inlined (the recurrences call it millions of times per second). Cody-Waite
// reduction x = n ln2 + r, |r| <= ln2/2, then a degree-5 polynomial of e^r and scalef for 2^n,
// which saturates to 0 / inf without overflow tricks. The polynomial is the minimax one for the
// relative error on [-ln2/2, ln2/2] (7.5e-8, about float32's rounding; 2e-7 evaluated in
// float32), where the degree-7 Taylor polynomial used before spent two more FMAs on a truncation
// error of 1e-8 that float32 cannot show: at H <= 64 the activations are about half of a
// recurrence step. The clamp keeps r finite for +-inf; operand order makes min/max return x
// when x is NaN, so a NaN propagates instead of being clamped into a number. The upper end, 88,
// keeps e^x finite (1.7e38; e^89 would overflow): sigmoid, the only caller, needs 1 + e^-x
// finite for its reciprocal (see vreciprocal).
inline __m512 vexp(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(-104.f), _mm512_min_ps(_mm512_set1_ps(88.f), x));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187045e-06f), r);
  __m512 p = _mm512_set1_ps(kExpPolynomial[0]);
  for (int i = 1; i < 6; ++i) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpPolynomial[i]));
  return _mm512_scalef_ps(p, n);
}
// 1 / d as rcp14 (relative error < 2^-14) refined by one Newton step r (2 - d r) to ~2^-28:
// the division instruction is several times slower here and the recurrences run it per gate.
// d must be finite: at d = inf rcp14 gives 0 and the Newton step inf * 0 = NaN.
inline __m512 vreciprocal(__m512 d) {
  const __m512 r = _mm512_rcp14_ps(d);
  return _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.f)));
}
// With e^-x at most e^88, sigmoid(x) for x < -88 is ~6e-39 instead of its true value below,
// and at x = -inf exactly 0 is restored (one fixupimm: the lanes whose x classifies as -inf,
// table token 8 = +0 in nibble 4, become 0; others keep the result). A -inf gate must give 0,
// as torch's does, so that 0 * inf downstream is NaN and a diverged run is seen as one.
inline __m512 vsigmoid(__m512 x) {
  const __m512 one = _mm512_set1_ps(1.f);
  const __m512 s = vreciprocal(_mm512_add_ps(one, vexp(_mm512_sub_ps(_mm512_setzero_ps(), x))));
  return _mm512_fixupimm_ps(s, x, _mm512_set1_epi32(8 << 16), 0);
}
// tanh(x) = 2 sigmoid(2x) - 1: absolute error ~1e-7 everywhere, the scale float32 resolves at 1.
inline __m512 vtanh(__m512 x) {
  const __m512 s = vsigmoid(_mm512_add_ps(x, x));
  return _mm512_fmsub_ps(_mm512_set1_ps(2.f), s, _mm512_set1_ps(1.f));
}
// float64 is for checking and research, not speed: Sleef's 1-ulp functions.
inline __m512d vtanh(__m512d x) { return Sleef_tanhd8_u10(x); }
inline __m512d vsigmoid(__m512d x) {
  const __m512d one = _mm512_set1_pd(1.0);
  return _mm512_div_pd(one, _mm512_add_pd(one, Sleef_expd8_u10(_mm512_sub_pd(_mm512_setzero_pd(), x))));
}
inline __m512 vload(const float* p, int n) { return _mm512_maskz_loadu_ps(n >= 16 ? 0xFFFF : (__mmask16)((1u << n) - 1), p); }
inline __m512d vload(const double* p, int n) { return _mm512_maskz_loadu_pd(n >= 8 ? 0xFF : (__mmask8)((1u << n) - 1), p); }
inline void vstore(float* p, __m512 v, int n) { _mm512_mask_storeu_ps(p, n >= 16 ? 0xFFFF : (__mmask16)((1u << n) - 1), v); }
inline void vstore(double* p, __m512d v, int n) { _mm512_mask_storeu_pd(p, n >= 8 ? 0xFF : (__mmask8)((1u << n) - 1), v); }
#elif RNNKIT_AVX2
// float32 on 256-bit vectors: the same exp as the AVX-512 branch, with 2^n built in the exponent
// bits (there is no scalef). The clamp keeps n in [-126, 127], so 2^n is a normal float:
// e^-87.3 ~ 1.2e-38 and e^88.3 ~ 2.2e38 stand in for 0 and inf, which moves sigmoid and tanh by
// less than 1e-38. Operand order makes min/max pass a NaN through.
inline __m256 vexp(__m256 x) {
  x = _mm256_max_ps(_mm256_set1_ps(-87.3f), _mm256_min_ps(_mm256_set1_ps(88.3f), x));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187045e-06f), r);
  __m256 p = _mm256_set1_ps(kExpPolynomial[0]);
  for (int i = 1; i < 6; ++i) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpPolynomial[i]));
  const __m256i exponent = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(exponent));
}
// 1 / d as rcp (relative error < 1.5 * 2^-12) and two Newton steps, each r + r (1 - d r) with
// the residual 1 - d r exact in one FMA; d = 1 + e^-x is finite (the clamp above), so a step
// never computes inf * 0. One step, written r (2 - d r), left rcp's error at ~2^-24: 1 / 1
// came out 0.99999994 (and 2 - d r rounds back to 1 there, so a second step in that form does
// not help). A saturated gate then never reached 1, its derivative s (1 - s) was 6e-8 instead
// of 0, and an infinite input gave inf gradients where torch.nn's are NaN. (AVX-512's rcp14
// is exact at 1, and one step suffices there.)
inline __m256 vreciprocal(__m256 d) {
  const __m256 one = _mm256_set1_ps(1.f);
  __m256 r = _mm256_rcp_ps(d);
  r = _mm256_fmadd_ps(r, _mm256_fnmadd_ps(d, r, one), r);
  return _mm256_fmadd_ps(r, _mm256_fnmadd_ps(d, r, one), r);
}
// sigmoid(-inf) is set to exactly 0, as in the AVX-512 branch (there is no fixupimm here).
inline __m256 vsigmoid(__m256 x) {
  const __m256 s =
      vreciprocal(_mm256_add_ps(_mm256_set1_ps(1.f), vexp(_mm256_sub_ps(_mm256_setzero_ps(), x))));
  const __m256 minus_inf = _mm256_cmp_ps(x, _mm256_set1_ps(-INFINITY), _CMP_EQ_OQ);
  return _mm256_andnot_ps(minus_inf, s);
}
inline __m256 vtanh(__m256 x) {
  const __m256 s = vsigmoid(_mm256_add_ps(x, x));
  return _mm256_fmsub_ps(_mm256_set1_ps(2.f), s, _mm256_set1_ps(1.f));
}
inline __m256d vtanh(__m256d x) { return Sleef_tanhd4_u10avx2(x); }
inline __m256d vsigmoid(__m256d x) {
  const __m256d one = _mm256_set1_pd(1.0);
  return _mm256_div_pd(one, _mm256_add_pd(one, Sleef_expd4_u10avx2(_mm256_sub_pd(_mm256_setzero_pd(), x))));
}
inline __m256 vload(const float* p, int n) { return load_lanes(p, n); }
inline __m256d vload(const double* p, int n) { return load_lanes(p, n); }
inline void vstore(float* p, __m256 v, int n) { store_lanes(p, v, n); }
inline void vstore(double* p, __m256d v, int n) { store_lanes(p, v, n); }
#endif

#if RNNKIT_AVX512 || RNNKIT_AVX2
template <typename T>
inline void sigmoid_array(T* dst, const T* src, int64_t n) {
  constexpr int W = Simd<T>::width;
  for (int64_t i = 0; i < n; i += W) {
    const int len = (int)std::min<int64_t>(W, n - i);
    vstore(dst + i, vsigmoid(vload(src + i, len)), len);
  }
}
template <typename T>
inline void tanh_array(T* dst, const T* src, int64_t n) {
  constexpr int W = Simd<T>::width;
  for (int64_t i = 0; i < n; i += W) {
    const int len = (int)std::min<int64_t>(W, n - i);
    vstore(dst + i, vtanh(vload(src + i, len)), len);
  }
}
#else
template <typename T>
inline void sigmoid_array(T* dst, const T* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = T(1) / (T(1) + std::exp(-src[i]));
}
template <typename T>
inline void tanh_array(T* dst, const T* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = std::tanh(src[i]);
}
#endif

}  // namespace rnnkit
