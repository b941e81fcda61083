// Packed GEMM for the recurrent matmuls: C (M x N) += A (M x K) * B (K x N).
//
// B is a weight that stays constant over all time steps of a call, so it is packed once per
// call into column panels of NR values: panel j holds B[0:K, j*NR:(j+1)*NR] row by row, zero
// padded at the right edge. The micro-kernel keeps an MR x NR block of C in registers and
// streams one panel, so each loaded B vector is reused MR times and each broadcast A value NR
// times. NR is two SIMD vectors; the build target chooses the kernels: gemm_avx512.h (512-bit),
// gemm_avx2.h (256-bit, AVX2 + FMA) or the portable loop below, which the compiler vectorizes
// for the host's SIMD width. This file holds the packing, the blocking and the dispatch.
#pragma once

#include <ATen/Parallel.h>

#include "buffer_pool.h"

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
// The transposing pack for 512-bit vectors (gemm_avx512.h, included below the helpers it uses).
inline int64_t pack_transposed_avx512(const float* src, float* dst, int64_t K, int64_t n0,
                                      int64_t width, int64_t stride_n);
#elif RNNKIT_AVX2
// The transposing pack for 256-bit vectors (gemm_avx2.h, included below the helpers it uses).
inline int64_t pack_transposed_avx2(const float* src, float* dst, int64_t K, int64_t n0,
                                    int64_t width, int64_t stride_n);
#endif

// The size from which a weight packed for all threads is packed by all of them (pack_values).
constexpr int64_t kParallelPackBytes = int64_t(256) << 10;

// Whether a pack of `bytes` whose caller asked for by_all_threads is split over the threads:
// from kParallelPackBytes, with more than one thread, and not from inside a parallel region.
inline bool pack_splits_over_threads(bool by_all_threads, int64_t bytes) {
  return by_all_threads && bytes >= kParallelPackBytes && at::get_num_threads() > 1 &&
         !at::in_parallel_region();
}

template <typename T>
struct PackedMatrix {
  static constexpr int NR = 2 * Simd<T>::width;  // columns per panel
  int64_t K = 0, N = 0, panels = 0;
  // The packed values, panels * K * NR: in a block of the buffer pool (buffer_pool.h), or in
  // lent memory. From malloc, a large copy got fresh pages whenever other code's allocations
  // between two calls had made glibc hand the memory back to the OS, a page fault per 4 KB:
  // LSTM inference at H = 512, B = 8, T = 1 (2 threads, AMD Zen 4), each call after a
  // torch.nn.LSTM call, took 2.05 ms from malloc and 1.05 ms from the pool.
  PooledBlock owned;
  T* lent = nullptr;  // the memory of pack_into, else null

  // Values a K x N matrix takes packed.
  static int64_t packed_size(int64_t K, int64_t N) { return (N + NR - 1) / NR * K * NR; }

  // Pack B where element (k, n) is at src[k * stride_k + n * stride_n]; with by_all_threads,
  // every thread packs a share of the panels (see pack_values).
  void pack(const T* src, int64_t K_, int64_t N_, int64_t stride_k, int64_t stride_n,
            bool by_all_threads = false) {
    T* memory = static_cast<T*>(owned.reserve(size_t(packed_size(K_, N_)) * sizeof(T)));
    lent = nullptr;
    pack_values(memory, src, K_, N_, stride_k, stride_n, by_all_threads);
  }
  // pack into memory of packed_size(K, N) values that the caller owns and keeps alive (the
  // per-thread slices of unit_team.h, from the buffer pool).
  void pack_into(T* memory, const T* src, int64_t K_, int64_t N_, int64_t stride_k, int64_t stride_n) {
    owned.release();
    lent = memory;
    pack_values(memory, src, K_, N_, stride_k, stride_n, /*by_all_threads=*/false);
  }
  const T* values() const { return lent ? lent : static_cast<const T*>(owned.get()); }
  const T* panel(int64_t p) const { return values() + p * K * NR; }

 private:
  void pack_values(T* out, const T* src, int64_t K_, int64_t N_, int64_t stride_k, int64_t stride_n,
                   bool by_all_threads) {
    K = K_;
    N = N_;
    panels = (N + NR - 1) / NR;
    const auto pack_panels = [&](int64_t first, int64_t last) {
      for (int64_t p = first; p < last; ++p) {
        T* dst = out + p * K * NR;
        const int64_t n0 = p * NR, width = std::min<int64_t>(NR, N - n0);
        int64_t k = 0;
        if (stride_k == 1) k = pack_transposed(src, dst, n0, width, stride_n);
        if (stride_n == 1 && width == NR)  // row-major B: each panel row is a contiguous copy
          for (; k < K; ++k) std::memcpy(dst + k * NR, src + k * stride_k + n0, NR * sizeof(T));
        for (; k < K; ++k)
          for (int64_t j = 0; j < NR; ++j)  // zero padding right of the last column
            dst[k * NR + j] = j < width ? src[k * stride_k + (n0 + j) * stride_n] : T(0);
      }
    };
    // Callers that pack a weight outside the threads' own blocks for all of them to read (one
    // copy shared by every row block, BlockWeight in common.h; the right-hand side of a weight
    // gradient, dense.h) ask for by_all_threads: then, from kParallelPackBytes and outside a
    // parallel region, every thread packs a share of the panels. Packed by the calling thread
    // alone, an LSTM's W_hh at H = 512 (4 MB) took longer than a step's product over it: the
    // forward op at T = 1, B = 8 ran 527 -> 324 us with both threads packing (2 threads, AMD
    // Zen 4). A copy one thread multiplies stays with that thread, in its core's cache.
    if (pack_splits_over_threads(by_all_threads, K * N * int64_t(sizeof(T)))) {
      at::parallel_for(0, panels, 1, pack_panels);
    } else {
      pack_panels(0, panels);
    }
  }
  // B = W^T of a row-major W (stride_k = 1: column n of B is row n of W), as every recurrent
  // and input weight is used. The element loop then reads each cache line of W for one value
  // and ran at 3-9 GB/s: 1.1-1.4 ms per call for an LSTM's W_hh at H = 512, a tenth of a
  // batch-1 inference over 100 steps. Here 16 x 16 tiles are read row by row and transposed
  // in registers. Returns the first k left to the element loop.
  int64_t pack_transposed(const T* src, T* dst, int64_t n0, int64_t width, int64_t stride_n) {
#if RNNKIT_AVX512
    if constexpr (std::is_same_v<T, float>) return pack_transposed_avx512(src, dst, K, n0, width, stride_n);
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
#elif RNNKIT_AVX512
#include "gemm_avx512.h"  // transposing pack, micro-kernels and GEMV for 512-bit vectors
#else
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

// The order in which a one-row product (the GEMV below) passes over the panels of B. A step's
// weight a little larger than L2 (an LSTM's W_hh at H = 512: 4 MB, against 2 MB of L2 on the
// Intel host) left nothing in L2 for the next step when every step read it in the same order:
// each panel had been evicted by the time the sweep came back to it. Sweeping every other step
// backwards starts each step on the panels the last one read, which are still there. The sum
// for each output is the same either way, so the order never changes a result.
enum class PanelOrder { ascending, descending };

// The order for the s-th step of a loop that multiplies by the same weight once per step.
inline PanelOrder panel_order_of_step(int64_t s) {
  return s % 2 ? PanelOrder::descending : PanelOrder::ascending;
}

// C[0, panels p0..) for the groups of four full panels in [p0, p1), in `order`; returns the
// first panel it did not cover (the groups are always taken from p0 on), which the
// micro-kernels finish.
template <typename T>
inline int64_t gemv_four_panels(const T* a, const PackedMatrix<T>& B, T* c, int64_t p0, int64_t p1,
                                const Start<T>& start, PanelOrder order) {
#if RNNKIT_AVX512 || RNNKIT_AVX2
  constexpr int64_t NR = PackedMatrix<T>::NR;
  const int64_t groups = std::max<int64_t>(0, (std::min(p1, B.N / NR) - p0) / 4);
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t p = p0 + 4 * (order == PanelOrder::descending ? groups - 1 - g : g);
    const T* bias = start.bias ? start.bias + p * NR : nullptr;
#if RNNKIT_AVX512
    gemv_four_panels_avx512(a, B.panel(p), B.K, c + p * NR, start.from_c, bias);
#else
    gemv_four_panels_avx2(a, B.panel(p), B.K, c + p * NR, start.from_c, bias);
#endif
  }
  return p0 + 4 * groups;
#else
  (void)a, (void)B, (void)c, (void)p1, (void)start, (void)order;
  return p0;  // the portable kernel handles every panel
#endif
}

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
// lda); C has row stride ldc. order: that of a one-row product's panels (PanelOrder above).
template <typename T, bool kColMajorA = false>
void gemm_blocked(int64_t M, const T* A, int64_t lda, const PackedMatrix<T>& B, T* C, int64_t ldc,
                  int64_t p0, int64_t p1, bool overwrite, const T* bias,
                  PanelOrder order = PanelOrder::ascending) {
  constexpr int NR = PackedMatrix<T>::NR;
  if (M == 1 && !kColMajorA) p0 = gemv_four_panels(A, B, C, p0, p1, Start<T>{!overwrite, bias}, order);
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
                     int64_t ldc, int64_t p0, int64_t p1, PanelOrder order = PanelOrder::ascending) {
  gemm_blocked(M, A, lda, B, C, ldc, p0, p1, false, static_cast<const T*>(nullptr), order);
}

// C[0:M, panels p0..p1) = A * B + bias (bias: N values, or null for zero)
template <typename T>
void gemm_assign(int64_t M, const T* A, int64_t lda, const PackedMatrix<T>& B, T* C, int64_t ldc,
                 int64_t p0, int64_t p1, const T* bias, PanelOrder order = PanelOrder::ascending) {
  gemm_blocked(M, A, lda, B, C, ldc, p0, p1, true, bias, order);
}

}  // namespace rnnkit
