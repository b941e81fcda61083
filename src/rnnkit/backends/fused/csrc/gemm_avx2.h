// 256-bit (AVX2 + FMA) kernels of the packed GEMM, for CPUs without AVX-512.
//
// Included by gemm.h (after Start, a_at and prefetch) when the build targets AVX2. Panels are
// NR = 2 vectors wide (16 floats, 8 doubles) and a micro-kernel block is up to 6 rows: 12
// accumulators, 2 B vectors and 1 broadcast fill the 16 ymm registers, so each loaded B vector
// serves 6 FMAs and each broadcast 2 (the classic 6 x 16 shape for this register file). The
// compiler-vectorized portable kernel spilled its 8 x 32 block (256 floats of accumulators)
// to the stack and ran at 7-10% of the FMA peak.
// Its definitions land in namespace rnnkit: the include sits inside it.
#pragma once

// Lanes [0, n) of a 256-bit mask for 32-bit (float) or 64-bit (double) values.
inline __m256i lane_mask_32(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline __m256i lane_mask_64(int n) {
  return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
}

// Loads and stores of the first n lanes (n may exceed the width: then all of them).
inline __m256 load_lanes(const float* p, int n) {
  return n >= 8 ? _mm256_loadu_ps(p) : n <= 0 ? _mm256_setzero_ps() : _mm256_maskload_ps(p, lane_mask_32(n));
}
inline __m256d load_lanes(const double* p, int n) {
  return n >= 4 ? _mm256_loadu_pd(p) : n <= 0 ? _mm256_setzero_pd() : _mm256_maskload_pd(p, lane_mask_64(n));
}
inline void store_lanes(float* p, __m256 v, int n) {
  if (n >= 8) _mm256_storeu_ps(p, v);
  else if (n > 0) _mm256_maskstore_ps(p, lane_mask_32(n), v);
}
inline void store_lanes(double* p, __m256d v, int n) {
  if (n >= 4) _mm256_storeu_pd(p, v);
  else if (n > 0) _mm256_maskstore_pd(p, lane_mask_64(n), v);
}

template <typename T> struct Avx2;  // the vector type and the few operations the kernels use
template <> struct Avx2<float> {
  using V = __m256;
  static constexpr int width = 8;
  static V zero() { return _mm256_setzero_ps(); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static V broadcast(float a) { return _mm256_set1_ps(a); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
};
template <> struct Avx2<double> {
  using V = __m256d;
  static constexpr int width = 4;
  static V zero() { return _mm256_setzero_pd(); }
  static V load(const double* p) { return _mm256_loadu_pd(p); }
  static V broadcast(double a) { return _mm256_set1_pd(a); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static V add(V a, V b) { return _mm256_add_pd(a, b); }
  static void store(double* p, V v) { _mm256_storeu_pd(p, v); }
};

// Keeps the two B vectors of a k step in registers: without it gcc folds the loads into the
// FMAs of every row (see the AVX-512 kernel in gemm.h for the measured cost).
template <typename V>
inline void keep_in_ymm(V& b0, V& b1) {
  asm("" : "+x"(b0), "+x"(b1));
}

// MR x 2W block of C (W values per vector): C = A B (+ C, or starting from the bias).
template <int MR, bool kColMajorA, typename T>
inline void micro_kernel(const T* A, int64_t lda, const T* Bp, int64_t K, T* C, int64_t ldc,
                         int cols, const Start<T>& start) {
  using S = Avx2<T>;
  constexpr int W = S::width, NR = 2 * W;
  typename S::V acc[MR][2];
  for (int r = 0; r < MR; ++r) prefetch(C + r * ldc, cols, /*for_write=*/true);
  if (start.from_c || !start.bias) {
    for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = S::zero();
  } else {  // every row starts from the bias: C is not read
    const typename S::V b0 = load_lanes(start.bias, cols), b1 = load_lanes(start.bias + W, cols - W);
    for (int r = 0; r < MR; ++r) {
      acc[r][0] = b0;
      acc[r][1] = b1;
    }
  }
  for (int64_t k = 0; k < K; ++k) {
    typename S::V b0 = S::load(Bp + k * NR), b1 = S::load(Bp + k * NR + W);
    keep_in_ymm(b0, b1);
    for (int r = 0; r < MR; ++r) {
      const typename S::V a = S::broadcast(a_at<kColMajorA>(A, lda, r, k));
      acc[r][0] = S::fma(a, b0, acc[r][0]);
      acc[r][1] = S::fma(a, b1, acc[r][1]);
    }
  }
  for (int r = 0; r < MR; ++r) {
    T* c = C + r * ldc;
    if (start.from_c) {
      acc[r][0] = S::add(acc[r][0], load_lanes(c, cols));
      acc[r][1] = S::add(acc[r][1], load_lanes(c + W, cols - W));
    }
    if (cols == NR) {
      S::store(c, acc[r][0]);
      S::store(c + W, acc[r][1]);
    } else {
      store_lanes(c, acc[r][0], cols);
      store_lanes(c + W, acc[r][1], cols - W);
    }
  }
}

// One row (a matrix-vector product): four full panels side by side, eight independent FMA
// chains (one panel alone has two and waits on the FMA latency). w: the first of the four
// panels, which lie one after another, K * NR apart; c and bias (null: zero): offset to the
// group's first column. The order in which groups pass is gemv_four_panels' (gemm.h).
template <typename T>
inline void gemv_four_panels_avx2(const T* a, const T* w, int64_t K, T* c, bool from_c,
                                  const T* bias) {
  using S = Avx2<T>;
  constexpr int W = S::width, NR = 2 * W;
  typename S::V acc[8];
  for (int j = 0; j < 8; ++j)
    acc[j] = from_c ? S::load(c + W * j) : bias ? S::load(bias + W * j) : S::zero();
  for (int64_t k = 0; k < K; ++k) {
    const typename S::V x = S::broadcast(a[k]);
    for (int q = 0; q < 4; ++q) {
      acc[2 * q] = S::fma(x, S::load(w + q * K * NR + k * NR), acc[2 * q]);
      acc[2 * q + 1] = S::fma(x, S::load(w + q * K * NR + k * NR + W), acc[2 * q + 1]);
    }
  }
  for (int j = 0; j < 8; ++j) S::store(c + W * j, acc[j]);
}

// Transpose the 8 x 8 floats rows[i][0..7] in place (rows[j][i] <- rows[i][j]).
inline void transpose_8x8(__m256 rows[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(rows[2 * i], rows[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(rows[2 * i], rows[2 * i + 1]);
  }
  for (int i = 0; i < 2; ++i) {  // u[4i + c], per 128-bit lane: column c of rows 4i..4i+3
    u[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int c = 0; c < 4; ++c) {
    rows[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
    rows[4 + c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
  }
}

// B = W^T of a row-major W (stride_k = 1), packed into a 16-wide panel starting at column n0:
// 8 x 8 tiles of W read row by row and transposed in registers (the element loop reads a cache
// line per value). Returns the first k left to the element loop.
inline int64_t pack_transposed_avx2(const float* src, float* dst, int64_t K, int64_t n0,
                                    int64_t width, int64_t stride_n) {
  int64_t k0 = 0;
  for (; k0 + 8 <= K; k0 += 8)
    for (int64_t half = 0; half < 2; ++half) {  // columns n0 + 8 half + (0..7)
      __m256 tile[8];
      for (int j = 0; j < 8; ++j) {
        const int64_t column = 8 * half + j;
        tile[j] = column < width ? _mm256_loadu_ps(src + (n0 + column) * stride_n + k0) : _mm256_setzero_ps();
      }
      transpose_8x8(tile);
      for (int kk = 0; kk < 8; ++kk) _mm256_storeu_ps(dst + (k0 + kk) * 16 + 8 * half, tile[kk]);
    }
  return k0;
}
