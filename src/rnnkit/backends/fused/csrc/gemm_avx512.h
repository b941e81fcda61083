// 512-bit (AVX-512F) kernels of the packed GEMM: the transposing pack, the MR x 32 micro-kernel
// and the one-row GEMV.
//
// Included by gemm.h (after Start, a_at and prefetch) when the build targets AVX-512. Panels
// are NR = 2 vectors wide (32 floats, 16 doubles); a micro-kernel block is up to 8 rows: 16
// accumulators, 2 B vectors and 1 broadcast within the 32 zmm registers.
// Its definitions land in namespace rnnkit: the include sits inside it.
#pragma once

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

// Pack B = W^T of a row-major W into 32-column panels, 16 x 16 tiles at a time: rows of W are
// read whole and transposed in registers (see PackedMatrix::pack_transposed). Returns the first
// k left to the element loop.
inline int64_t pack_transposed_avx512(const float* src, float* dst, int64_t K, int64_t n0,
                                      int64_t width, int64_t stride_n) {
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
      for (int kk = 0; kk < 16; ++kk) _mm512_storeu_ps(dst + (k0 + kk) * 32 + 16 * half, tile[kk]);
    }
  return k0;
}

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

// The GEMV streams its weights from L2 (an LSTM's at H = 128 are 512 KB), four panels at once,
// and the hardware prefetchers did not keep up with four streams: the values kGemvPrefetchSteps
// k steps ahead (two cache lines per panel, 512 bytes ahead) are requested by hand. Batch-1
// steps on the Intel host, each variant in its own process, shuffled, medians of 15 rounds:
// LSTM H = 128 6.89 -> 5.25 us, GRU H = 128 5.36 -> 3.90 us, Elman H = 128 1.60 -> 1.41 us;
// a GRU layer at B = 1, H = 256, T = 100 1.60 -> 1.42 ms; H = 512 (memory-bound) level. See
// docs/decisions/fused-kernels.md.
constexpr int64_t kGemvPrefetchSteps = 4;

template <typename T>
inline void prefetch_four_panels(const T* w, int64_t panel_stride, int64_t offset) {
  for (int q = 0; q < 4; ++q) {
    const char* line = reinterpret_cast<const char*>(w + q * panel_stride + offset);
    _mm_prefetch(line, _MM_HINT_T0);
    _mm_prefetch(line + 64, _MM_HINT_T0);  // a panel's k step is 128 bytes: two lines
  }
}

// One row (M = 1, a matrix-vector product): with only one A value per k the MR x NR kernel has
// two dependent FMA chains per panel and stalls on FMA latency, so here four full panels run
// side by side: eight independent accumulators. w: the first of the four panels, which lie one
// after another, K * 32 apart; c and bias (null: zero): offset to the group's first column.
// The order in which groups pass is gemv_four_panels' (gemm.h).
inline void gemv_four_panels_avx512(const float* a, const float* w, int64_t K, float* c,
                                    bool from_c, const float* bias) {
  __m512 acc[8];
  for (int j = 0; j < 8; ++j)
    acc[j] = from_c ? _mm512_loadu_ps(c + 16 * j)
             : bias ? _mm512_loadu_ps(bias + 16 * j)
                    : _mm512_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    const __m512 x = _mm512_set1_ps(a[k]);
    if (k + kGemvPrefetchSteps < K) prefetch_four_panels(w, K * 32, (k + kGemvPrefetchSteps) * 32);
    for (int q = 0; q < 4; ++q) {
      acc[2 * q] = _mm512_fmadd_ps(x, _mm512_loadu_ps(w + q * K * 32 + k * 32), acc[2 * q]);
      acc[2 * q + 1] = _mm512_fmadd_ps(x, _mm512_loadu_ps(w + q * K * 32 + k * 32 + 16), acc[2 * q + 1]);
    }
  }
  for (int j = 0; j < 8; ++j) _mm512_storeu_ps(c + 16 * j, acc[j]);
}
inline void gemv_four_panels_avx512(const double* a, const double* w, int64_t K, double* c,
                                    bool from_c, const double* bias) {
  __m512d acc[8];
  for (int j = 0; j < 8; ++j)
    acc[j] = from_c ? _mm512_loadu_pd(c + 8 * j)
             : bias ? _mm512_loadu_pd(bias + 8 * j)
                    : _mm512_setzero_pd();
  for (int64_t k = 0; k < K; ++k) {
    const __m512d x = _mm512_set1_pd(a[k]);
    if (k + kGemvPrefetchSteps < K) prefetch_four_panels(w, K * 16, (k + kGemvPrefetchSteps) * 16);
    for (int q = 0; q < 4; ++q) {
      acc[2 * q] = _mm512_fmadd_pd(x, _mm512_loadu_pd(w + q * K * 16 + k * 16), acc[2 * q]);
      acc[2 * q + 1] = _mm512_fmadd_pd(x, _mm512_loadu_pd(w + q * K * 16 + k * 16 + 8), acc[2 * q + 1]);
    }
  }
  for (int j = 0; j < 8; ++j) _mm512_storeu_pd(c + 8 * j, acc[j]);
}
