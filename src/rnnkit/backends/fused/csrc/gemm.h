// Packed GEMM for the recurrent matmuls: C (M x N) += A (M x K) * B (K x N).
//
// B is a weight that stays constant over all time steps of a call, so it is packed once per
// call into column panels of NR values: panel j holds B[0:K, j*NR:(j+1)*NR] row by row, zero
// padded at the right edge. The micro-kernel keeps an MR x NR block of C in registers and
// streams one panel, so each loaded B vector is reused MR times and each broadcast A value NR
// times. With AVX-512 (chosen at build time) NR is two 512-bit vectors; otherwise a portable
// loop that the compiler vectorizes for the host's SIMD width.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#define RNNKIT_AVX512 1
#else
#define RNNKIT_AVX512 0
#endif
// AVX2 + FMA without AVX-512 (Zen 1-3, most Intel client CPUs): 256-bit kernels in gemm_avx2.h.
#if !RNNKIT_AVX512 && defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define RNNKIT_AVX2 1
#else
#define RNNKIT_AVX2 0
#endif

namespace rnnkit {

// Vector width of T: values per register of the build's SIMD (512-bit, or 256-bit with AVX2;
// the portable kernel uses the 512-bit shape and lets the compiler map it).
template <typename T> struct Simd;
template <> struct Simd<float> { static constexpr int width = RNNKIT_AVX2 ? 8 : 16; };
template <> struct Simd<double> { static constexpr int width = RNNKIT_AVX2 ? 4 : 8; };

#if RNNKIT_AVX512
// Transpose the 16 x 16 floats rows[i][0..15] (rows[i] = 16 values of row i) in place: after
// it rows[j][i] holds what rows[i][j] held. Three rounds of in-lane and cross-lane shuffles.
inline void transpose_16x16(__m512 rows[16]) {
  __m512 a[16], b[16];
  for (int i = 0; i < 8; ++i) {  // pairs of rows interleaved within each 128-bit lane
    a[2 * i] = _mm512_unpacklo_ps(rows[2 * i], rows[2 * i + 1]);
    a[2 * i + 1] = _mm512_unpackhi_ps(rows[2 * i], rows[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {  // b[4i + c], lane L: column 4L + c of rows 4i..4i+3
    const __m512d a0 = _mm512_castps_pd(a[4 * i]), a1 = _mm512_castps_pd(a[4 * i + 1]);
    const __m512d a2 = _mm512_castps_pd(a[4 * i + 2]), a3 = _mm512_castps_pd(a[4 * i + 3]);
    b[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
    b[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
    b[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
    b[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
  }
  for (int c = 0; c < 4; ++c) {  // gather lane L of b[c], b[4+c], b[8+c], b[12+c]
    const __m512 low01 = _mm512_shuffle_f32x4(b[c], b[4 + c], 0x44);
    const __m512 low23 = _mm512_shuffle_f32x4(b[8 + c], b[12 + c], 0x44);
    const __m512 high01 = _mm512_shuffle_f32x4(b[c], b[4 + c], 0xEE);
    const __m512 high23 = _mm512_shuffle_f32x4(b[8 + c], b[12 + c], 0xEE);
    rows[c] = _mm512_shuffle_f32x4(low01, low23, 0x88);
    rows[4 + c] = _mm512_shuffle_f32x4(low01, low23, 0xDD);
    rows[8 + c] = _mm512_shuffle_f32x4(high01, high23, 0x88);
    rows[12 + c] = _mm512_shuffle_f32x4(high01, high23, 0xDD);
  }
}
#endif

#if RNNKIT_AVX2
// The transposing pack for 256-bit vectors (gemm_avx2.h, included below the helpers it uses).
inline int64_t pack_transposed_avx2(const float* src, float* dst, int64_t K, int64_t n0,
                                    int64_t width, int64_t stride_n);
#endif

// std::allocator that leaves plain values uninitialized on resize: a packed matrix writes
// every element itself, and zero-filling it first doubled the writes (a third of the time of
// packing W_hh at H = 512).
template <typename T>
struct UninitializedAllocator : std::allocator<T> {
  template <typename U>
  struct rebind { using other = UninitializedAllocator<U>; };
  template <typename U>
  void construct(U* p) noexcept { ::new (static_cast<void*>(p)) U; }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) { ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...); }
};

template <typename T>
struct PackedMatrix {
  static constexpr int NR = 2 * Simd<T>::width;  // columns per panel
  int64_t K = 0, N = 0, panels = 0;
  std::vector<T, UninitializedAllocator<T>> data;  // panels * K * NR

  // Pack B where element (k, n) is at src[k * stride_k + n * stride_n].
  void pack(const T* src, int64_t K_, int64_t N_, int64_t stride_k, int64_t stride_n) {
    K = K_;
    N = N_;
    panels = (N + NR - 1) / NR;
    data.resize(panels * K * NR);
    for (int64_t p = 0; p < panels; ++p) {
      T* dst = data.data() + p * K * NR;
      const int64_t n0 = p * NR, width = std::min<int64_t>(NR, N - n0);
      int64_t k = 0;
      if (stride_k == 1) k = pack_transposed(src, dst, n0, width, stride_n);
      if (stride_n == 1 && width == NR)  // row-major B: each panel row is a contiguous copy
        for (; k < K; ++k) std::memcpy(dst + k * NR, src + k * stride_k + n0, NR * sizeof(T));
      for (; k < K; ++k)
        for (int64_t j = 0; j < NR; ++j)  // zero padding right of the last column
          dst[k * NR + j] = j < width ? src[k * stride_k + (n0 + j) * stride_n] : T(0);
    }
  }
  const T* panel(int64_t p) const { return data.data() + p * K * NR; }

 private:
  // B = W^T of a row-major W (stride_k = 1: column n of B is row n of W), as every recurrent
  // and input weight is used. The element loop then reads each cache line of W for one value
  // and ran at 3-9 GB/s: 1.1-1.4 ms per call for an LSTM's W_hh at H = 512, a tenth of a
  // batch-1 inference over 100 steps. Here 16 x 16 tiles are read row by row and transposed
  // in registers. Returns the first k left to the element loop.
  int64_t pack_transposed(const T* src, T* dst, int64_t n0, int64_t width, int64_t stride_n) {
#if RNNKIT_AVX512
    if constexpr (std::is_same_v<T, float>) {
      int64_t k0 = 0;
      for (; k0 + 16 <= K; k0 += 16)
        for (int64_t half = 0; half < 2; ++half) {  // columns n0 + 16 half + (0..15)
          __m512 tile[16];
          for (int j = 0; j < 16; ++j) {
            const int64_t column = 16 * half + j;
            tile[j] = column < width ? _mm512_loadu_ps(src + (n0 + column) * stride_n + k0)
                                     : _mm512_setzero_ps();
          }
          transpose_16x16(tile);
          for (int kk = 0; kk < 16; ++kk) _mm512_storeu_ps(dst + (k0 + kk) * NR + 16 * half, tile[kk]);
        }
      return k0;
    }
#elif RNNKIT_AVX2
    if constexpr (std::is_same_v<T, float>) return pack_transposed_avx2(src, dst, K, n0, width, stride_n);
#endif
    (void)src, (void)dst, (void)n0, (void)width, (void)stride_n;
    return 0;
  }
};

// Element (r, k) of A with row stride lda: A is stored row-major, or (kColMajorA) column-major,
// where the MR values a k step broadcasts lie next to each other. Column-major A is a transposed
// view, as in the weight gradients dW = dG^T X, whose A = dG^T is never copied.
template <bool kColMajorA, typename T>
inline T a_at(const T* A, int64_t lda, int64_t r, int64_t k) {
  return kColMajorA ? A[k * lda + r] : A[r * lda + k];
}

// What a block of C starts from before the products are added: C itself (accumulate), or, when
// C is being overwritten, the bias row (already offset to the block's first column) or zero.
// Overwriting skips the pass that would fill C with the bias or zeros and the read of it.
// When accumulating, a block sums its depth slice from zero and adds C at the end: a long K
// (the weight gradients sum over all T x B rows) then rounds as a sum of block sums, not as
// one chain of K additions (max error over 700 terms: 9e-5 as one chain, 1.8e-5 blocked,
// 3.3e-5 for at::mm).
template <typename T>
struct Start {
  bool from_c = true;
  const T* bias = nullptr;
};

// Bring the `count` values at p into cache ahead of use; for_write also requests ownership of
// the lines (prefetchw), for data about to be overwritten.
template <typename T>
inline void prefetch(const T* p, int64_t count, bool for_write = false) {
  const char* bytes = reinterpret_cast<const char*>(p);
  for (int64_t offset = 0; offset < count * (int64_t)sizeof(T); offset += 64) {
    if (for_write) __builtin_prefetch(bytes + offset, /*rw=*/1, /*locality=*/3);
    else __builtin_prefetch(bytes + offset, /*rw=*/0, /*locality=*/3);
  }
}

#if RNNKIT_AVX2
#include "gemm_avx2.h"  // transposing pack, micro-kernels and GEMV for 256-bit vectors
#endif

#if RNNKIT_AVX512
// The panel's two B vectors of a k step are loaded once into registers and reused by all MR
// rows. Left to itself, gcc folds the loads into the FMAs for MR <= 4 (inlined into
// gemm_blocked), loading each vector MR times: the 4-row kernel then ran at 47 GFLOP/s on a
// 4 x 64 x 256 product, against 84 with the loads kept apart (the load ports, not the FMAs,
// were the limit). The empty asm makes the values opaque, so they cannot be re-loaded.
template <typename V>
inline void keep_in_registers(V& b0, V& b1) {
  asm("" : "+v"(b0), "+v"(b1));
}

// A block of C is prefetched for writing when its micro-kernel starts, so that fetching its
// lines overlaps the block's FMAs instead of stalling its final stores. Without it an overwrite
// of a C larger than L2 (the input projection over all steps, 6400 x 256 floats) ran at 59
// GFLOP/s against 87 for one that fits.
// MR x 32 float block: 2*MR accumulators in zmm registers.
template <int MR, bool kColMajorA>
inline void micro_kernel(const float* A, int64_t lda, const float* Bp, int64_t K, float* C,
                         int64_t ldc, int cols, const Start<float>& start) {
  __m512 acc[MR][2];
  const __mmask16 m0 = cols >= 16 ? 0xFFFF : (__mmask16)((1u << cols) - 1);
  const __mmask16 m1 = cols <= 16 ? 0 : cols >= 32 ? 0xFFFF : (__mmask16)((1u << (cols - 16)) - 1);
  for (int r = 0; r < MR; ++r) prefetch(C + r * ldc, cols, /*for_write=*/true);
  if (start.from_c) {  // C is added at the end (see Start)
    for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  } else {  // every row starts from the bias (or zero): C is not read
    const __m512 b0 = start.bias ? _mm512_maskz_loadu_ps(m0, start.bias) : _mm512_setzero_ps();
    const __m512 b1 = start.bias ? _mm512_maskz_loadu_ps(m1, start.bias + 16) : _mm512_setzero_ps();
    for (int r = 0; r < MR; ++r) {
      acc[r][0] = b0;
      acc[r][1] = b1;
    }
  }
  for (int64_t k = 0; k < K; ++k) {
    __m512 b0 = _mm512_loadu_ps(Bp + k * 32);
    __m512 b1 = _mm512_loadu_ps(Bp + k * 32 + 16);
    keep_in_registers(b0, b1);
    for (int r = 0; r < MR; ++r) {
      const __m512 a = _mm512_set1_ps(a_at<kColMajorA>(A, lda, r, k));
      acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);
    }
  }
  if (start.from_c)
    for (int r = 0; r < MR; ++r) {
      acc[r][0] = _mm512_add_ps(acc[r][0], _mm512_maskz_loadu_ps(m0, C + r * ldc));
      acc[r][1] = _mm512_add_ps(acc[r][1], _mm512_maskz_loadu_ps(m1, C + r * ldc + 16));
    }
  for (int r = 0; r < MR; ++r) {
    _mm512_mask_storeu_ps(C + r * ldc, m0, acc[r][0]);
    _mm512_mask_storeu_ps(C + r * ldc + 16, m1, acc[r][1]);
  }
}

template <int MR, bool kColMajorA>
inline void micro_kernel(const double* A, int64_t lda, const double* Bp, int64_t K, double* C,
                         int64_t ldc, int cols, const Start<double>& start) {
  __m512d acc[MR][2];
  const __mmask8 m0 = cols >= 8 ? 0xFF : (__mmask8)((1u << cols) - 1);
  const __mmask8 m1 = cols <= 8 ? 0 : cols >= 16 ? 0xFF : (__mmask8)((1u << (cols - 8)) - 1);
  for (int r = 0; r < MR; ++r) prefetch(C + r * ldc, cols, /*for_write=*/true);
  if (start.from_c) {  // C is added at the end (see Start)
    for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_pd();
  } else {
    const __m512d b0 = start.bias ? _mm512_maskz_loadu_pd(m0, start.bias) : _mm512_setzero_pd();
    const __m512d b1 = start.bias ? _mm512_maskz_loadu_pd(m1, start.bias + 8) : _mm512_setzero_pd();
    for (int r = 0; r < MR; ++r) {
      acc[r][0] = b0;
      acc[r][1] = b1;
    }
  }
  for (int64_t k = 0; k < K; ++k) {
    __m512d b0 = _mm512_loadu_pd(Bp + k * 16);
    __m512d b1 = _mm512_loadu_pd(Bp + k * 16 + 8);
    keep_in_registers(b0, b1);
    for (int r = 0; r < MR; ++r) {
      const __m512d a = _mm512_set1_pd(a_at<kColMajorA>(A, lda, r, k));
      acc[r][0] = _mm512_fmadd_pd(a, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_pd(a, b1, acc[r][1]);
    }
  }
  if (start.from_c)
    for (int r = 0; r < MR; ++r) {
      acc[r][0] = _mm512_add_pd(acc[r][0], _mm512_maskz_loadu_pd(m0, C + r * ldc));
      acc[r][1] = _mm512_add_pd(acc[r][1], _mm512_maskz_loadu_pd(m1, C + r * ldc + 8));
    }
  for (int r = 0; r < MR; ++r) {
    _mm512_mask_storeu_pd(C + r * ldc, m0, acc[r][0]);
    _mm512_mask_storeu_pd(C + r * ldc + 8, m1, acc[r][1]);
  }
}
#elif !RNNKIT_AVX2
// Portable MR x NR block; the fixed-size inner loop vectorizes at -O3 for the host's SIMD.
template <int MR, bool kColMajorA, typename T>
inline void micro_kernel(const T* A, int64_t lda, const T* Bp, int64_t K, T* C, int64_t ldc,
                         int cols, const Start<T>& start) {
  constexpr int NR = PackedMatrix<T>::NR;
  T acc[MR][NR];
  for (int r = 0; r < MR; ++r)
    for (int j = 0; j < NR; ++j)
      acc[r][j] = j < cols && !start.from_c && start.bias ? start.bias[j] : T(0);
  for (int64_t k = 0; k < K; ++k) {
    const T* b = Bp + k * NR;
    for (int r = 0; r < MR; ++r) {
      const T a = a_at<kColMajorA>(A, lda, r, k);
      for (int j = 0; j < NR; ++j) acc[r][j] += a * b[j];
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int j = 0; j < cols; ++j) C[r * ldc + j] = start.from_c ? C[r * ldc + j] + acc[r][j] : acc[r][j];
}
#endif

// MR = 8: 16 accumulators + 2 B vectors + 1 broadcast fit the 32 zmm registers, each B vector
// loaded serves 8 FMAs, and the common batch sizes (8, 16, 32, 64 rows) split into full blocks
// (with MR = 6 a batch of 16 ran 6 + 6 + 4 rows: 73 GFLOP/s against 86 with 8 + 8).
// With AVX2 (16 ymm registers) the block is 6 x 16: 12 accumulators + 2 B vectors + 1 broadcast.
constexpr int kRowBlock = RNNKIT_AVX2 ? 6 : 8;

template <bool kColMajorA, typename T>
inline void rows_kernel(int rows, const T* A, int64_t lda, const T* Bp, int64_t K, T* C,
                        int64_t ldc, int cols, const Start<T>& s) {
  switch (rows) {
    case 8: micro_kernel<8, kColMajorA>(A, lda, Bp, K, C, ldc, cols, s); break;
    case 7: micro_kernel<7, kColMajorA>(A, lda, Bp, K, C, ldc, cols, s); break;
    case 6: micro_kernel<6, kColMajorA>(A, lda, Bp, K, C, ldc, cols, s); break;
    case 5: micro_kernel<5, kColMajorA>(A, lda, Bp, K, C, ldc, cols, s); break;
    case 4: micro_kernel<4, kColMajorA>(A, lda, Bp, K, C, ldc, cols, s); break;
    case 3: micro_kernel<3, kColMajorA>(A, lda, Bp, K, C, ldc, cols, s); break;
    case 2: micro_kernel<2, kColMajorA>(A, lda, Bp, K, C, ldc, cols, s); break;
    default: micro_kernel<1, kColMajorA>(A, lda, Bp, K, C, ldc, cols, s); break;
  }
}

#if RNNKIT_AVX512
// One row (M = 1, a matrix-vector product): with only one A value per k the MR x NR kernel has
// two dependent FMA chains per panel and stalls on FMA latency, so here four full panels run
// side by side: eight independent accumulators. Returns the first panel it did not cover.
inline int64_t gemv_four_panels(const float* a, const PackedMatrix<float>& B, float* c,
                                int64_t p0, int64_t p1, const Start<float>& start) {
  const int64_t K = B.K, full = B.N / 32;
  int64_t p = p0;
  for (; p + 4 <= std::min(p1, full); p += 4) {
    const float* w = B.panel(p);  // the four panels lie one after another, K * 32 apart
    __m512 acc[8];
    for (int j = 0; j < 8; ++j)
      acc[j] = start.from_c ? _mm512_loadu_ps(c + p * 32 + 16 * j)
               : start.bias ? _mm512_loadu_ps(start.bias + p * 32 + 16 * j)
                            : _mm512_setzero_ps();
    for (int64_t k = 0; k < K; ++k) {
      const __m512 x = _mm512_set1_ps(a[k]);
      for (int q = 0; q < 4; ++q) {
        acc[2 * q] = _mm512_fmadd_ps(x, _mm512_loadu_ps(w + q * K * 32 + k * 32), acc[2 * q]);
        acc[2 * q + 1] = _mm512_fmadd_ps(x, _mm512_loadu_ps(w + q * K * 32 + k * 32 + 16), acc[2 * q + 1]);
      }
    }
    for (int j = 0; j < 8; ++j) _mm512_storeu_ps(c + p * 32 + 16 * j, acc[j]);
  }
  return p;
}
inline int64_t gemv_four_panels(const double* a, const PackedMatrix<double>& B, double* c,
                                int64_t p0, int64_t p1, const Start<double>& start) {
  const int64_t K = B.K, full = B.N / 16;
  int64_t p = p0;
  for (; p + 4 <= std::min(p1, full); p += 4) {
    const double* w = B.panel(p);
    __m512d acc[8];
    for (int j = 0; j < 8; ++j)
      acc[j] = start.from_c ? _mm512_loadu_pd(c + p * 16 + 8 * j)
               : start.bias ? _mm512_loadu_pd(start.bias + p * 16 + 8 * j)
                            : _mm512_setzero_pd();
    for (int64_t k = 0; k < K; ++k) {
      const __m512d x = _mm512_set1_pd(a[k]);
      for (int q = 0; q < 4; ++q) {
        acc[2 * q] = _mm512_fmadd_pd(x, _mm512_loadu_pd(w + q * K * 16 + k * 16), acc[2 * q]);
        acc[2 * q + 1] = _mm512_fmadd_pd(x, _mm512_loadu_pd(w + q * K * 16 + k * 16 + 8), acc[2 * q + 1]);
      }
    }
    for (int j = 0; j < 8; ++j) _mm512_storeu_pd(c + p * 16 + 8 * j, acc[j]);
  }
  return p;
}
#elif RNNKIT_AVX2
template <typename T>
inline int64_t gemv_four_panels(const T* a, const PackedMatrix<T>& B, T* c, int64_t p0, int64_t p1,
                                const Start<T>& start) {
  return gemv_four_panels_avx2(a, B.data.data(), B.K, B.N, c, p0, p1, start.from_c, start.bias);
}
#else
template <typename T>
inline int64_t gemv_four_panels(const T*, const PackedMatrix<T>&, T*, int64_t p0, int64_t,
                                const Start<T>&) {
  return p0;  // the portable kernel handles every panel
}
#endif

// Cache blocking: a block of kRowsPerBlock rows of A (x kDepthPerBlock values) stays in L2
// while every panel passes over it, and a panel slice of kDepthPerBlock x NR values (16 KB for
// float) stays in L1 while the row blocks of kRowBlock pass over it. Without it, tall products
// (the input projection over all steps) re-stream A from memory once per panel.
constexpr int64_t kRowsPerBlock = 96;   // a multiple of kRowBlock
constexpr int64_t kDepthPerBlock = 128;
// Rows per block of a column-major A (see gemm_blocked). Its depth is kDepthPerBlock as well:
// with the same block boundaries a product rounds identically whichever layout A has (a
// transposed view or a contiguous copy of it), which torch.compile's checks rely on.
constexpr int64_t kColMajorRows = 512;

// C[0:M, panels p0..p1) = A (M x K) * B (packed) + C, or with overwrite + bias (a row of N
// values, or zero when null), never reading C. A has row stride lda (kColMajorA: column stride
// lda); C has row stride ldc.
template <typename T, bool kColMajorA = false>
void gemm_blocked(int64_t M, const T* A, int64_t lda, const PackedMatrix<T>& B, T* C, int64_t ldc,
                  int64_t p0, int64_t p1, bool overwrite, const T* bias) {
  constexpr int NR = PackedMatrix<T>::NR;
  if (M == 1 && !kColMajorA) p0 = gemv_four_panels(A, B, C, p0, p1, Start<T>{!overwrite, bias});
  // Column-major A (a transposed view, long K: the weight gradients over all T x B rows) is
  // blocked differently: all its rows (up to kColMajorRows) per block, so that a block is whole
  // consecutive rows of the stored matrix. Blocks of 96 rows instead lie lda apart and collide
  // in a few L1 sets (74 GFLOP/s against 98 for row-major A, dW of 256 x 64 over 6400 rows).
  const int64_t rows_per_block = kColMajorA ? kColMajorRows : kRowsPerBlock;
  for (int64_t m0 = 0; m0 < M; m0 += rows_per_block) {
    const int64_t m1 = std::min(M, m0 + rows_per_block);
    // do-while: with K = 0 an overwrite still has to write the bias (or zeros)
    int64_t k0 = 0;
    do {
      const int64_t depth = std::min(kDepthPerBlock, B.K - k0);
      for (int64_t p = p0; p < p1; ++p) {
        const int cols = (int)std::min<int64_t>(NR, B.N - p * NR);
        const T* panel = B.panel(p) + k0 * NR;
        // only the first depth block starts from the bias; later ones add to what it left
        const Start<T> start{!overwrite || k0 > 0, bias ? bias + p * NR : nullptr};
        for (int64_t m = m0; m < m1; m += kRowBlock) {
          const int rows = (int)std::min<int64_t>(kRowBlock, m1 - m);
          const T* a_block = kColMajorA ? A + k0 * lda + m : A + m * lda + k0;
          rows_kernel<kColMajorA, T>(rows, a_block, lda, panel, depth, C + m * ldc + p * NR, ldc,
                                     cols, start);
        }
      }
      k0 += kDepthPerBlock;
    } while (k0 < B.K);
  }
}

// C[0:M, panels p0..p1) += A * B
template <typename T>
void gemm_accumulate(int64_t M, const T* A, int64_t lda, const PackedMatrix<T>& B, T* C,
                     int64_t ldc, int64_t p0, int64_t p1) {
  gemm_blocked(M, A, lda, B, C, ldc, p0, p1, false, static_cast<const T*>(nullptr));
}

// C[0:M, panels p0..p1) = A * B + bias (bias: N values, or null for zero)
template <typename T>
void gemm_assign(int64_t M, const T* A, int64_t lda, const PackedMatrix<T>& B, T* C, int64_t ldc,
                 int64_t p0, int64_t p1, const T* bias) {
  gemm_blocked(M, A, lda, B, C, ldc, p0, p1, true, bias);
}

}  // namespace rnnkit
