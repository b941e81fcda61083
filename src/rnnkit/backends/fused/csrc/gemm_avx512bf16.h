// bfloat16 recurrent products on CPUs with AVX512-BF16 but no AMX (AMD Zen 4 and later, Intel
// Cooper Lake): the same product as the AMX tiles of gemm_amx.h, from the same packed weight,
//     C = bf16(A) bf16(B), accumulated in float32,
// with VDPBF16PS, which multiplies 16 pairs of bfloat16 per lane group and adds both products to
// a float32 lane: 32 multiply-adds per instruction against 16 for a float32 FMA, and on Zen 4
// the same issue rate, so twice the float32 rate (torch.mm in bfloat16 ran at 2.4x float32 on
// the 2-core Zen 4 host of 2026-12-04, through oneDNN's kernels for the same instruction).
//
// Layout. PackedBf16 (gemm_amx.h) stores B as 16-column blocks of K_pad / 2 pair rows, each pair
// row 16 columns x 2 values = 64 bytes = one zmm register: lane j holds (B[k, j], B[k + 1, j]),
// what VDPBF16PS reads. A is the padded bfloat16 copy of the step's rows (K_pad values per row);
// the pair (A[m, k], A[m, k + 1]) is one 32-bit word, broadcast to all lanes. So
//     acc[m][j] += A[m, k] B[k, j] + A[m, k + 1] B[k + 1, j]
// for 16 columns j at a time, and a pair row of B is reused by every row of the block.
//
// Blocking. The micro-kernel holds up to 8 rows x 2 column blocks (16 accumulators, 2 B vectors
// and a broadcast in the 32 zmm registers) over the whole depth. Column pairs are the outer loop
// and row blocks the inner one, so one pair of column blocks (K_pad x 32 bfloat16: 32 KB at
// K = 512) stays in L1/L2 while every row block passes, and the whole weight streams from L3
// once per step, not once per 8 rows.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__AVX512BF16__) && defined(__AVX512F__)
#include <immintrin.h>
#define RNNKIT_AVX512_BF16 1
#else
#define RNNKIT_AVX512_BF16 0
#endif

namespace rnnkit {

#if RNNKIT_AVX512_BF16
// C rows [m0, m0 + R) x column blocks nb, nb + 1 (32 columns) = A B over all K_pad / 2 pairs.
// a: row m at a + m * K_pad (bfloat16 bits); b0, b1: the two column blocks' pair rows;
// c: row m at c + m * ldc, written (not accumulated).
template <int R>
inline void dot_bf16_block(const uint16_t* a, int64_t K_pad, const uint16_t* b0,
                           const uint16_t* b1, float* c, int64_t ldc) {
  __m512 acc0[R], acc1[R];
  for (int r = 0; r < R; ++r) {
    acc0[r] = _mm512_setzero_ps();
    acc1[r] = _mm512_setzero_ps();
  }
  const int64_t pairs = K_pad / 2;
  for (int64_t p = 0; p < pairs; ++p) {
    const __m512bh w0 = (__m512bh)_mm512_loadu_si512(b0 + p * 32);
    const __m512bh w1 = (__m512bh)_mm512_loadu_si512(b1 + p * 32);
    for (int r = 0; r < R; ++r) {
      int32_t word;
      std::memcpy(&word, a + r * K_pad + 2 * p, sizeof word);
      const __m512bh x = (__m512bh)_mm512_set1_epi32(word);
      acc0[r] = _mm512_dpbf16_ps(acc0[r], x, w0);
      acc1[r] = _mm512_dpbf16_ps(acc1[r], x, w1);
    }
  }
  for (int r = 0; r < R; ++r) {
    _mm512_storeu_ps(c + r * ldc, acc0[r]);
    _mm512_storeu_ps(c + r * ldc + 16, acc1[r]);
  }
}

// The product of M rows of a (bfloat16, K_pad per row) with the packed weight b
// (PackedBf16::values(): N_pad / 16 column blocks of K_pad / 2 pair rows of 32 values each,
// adjacent), into c (M x N_pad float32, row stride N_pad).
inline void dot_bf16_multiply(int64_t M, const uint16_t* a, int64_t K_pad, int64_t N_pad,
                              const uint16_t* b, float* c) {
  const int64_t block_values = K_pad * 16;  // one column block: K_pad / 2 pair rows x 32
  for (int64_t nb = 0; nb < N_pad / 16; nb += 2) {
    const uint16_t* b0 = b + nb * block_values;
    const uint16_t* b1 = b0 + block_values;
    int64_t m = 0;
    for (; m + 8 <= M; m += 8)
      dot_bf16_block<8>(a + m * K_pad, K_pad, b0, b1, c + m * N_pad + nb * 16, N_pad);
    const uint16_t* a_rest = a + m * K_pad;
    float* c_rest = c + m * N_pad + nb * 16;
    switch (M - m) {
      case 7: dot_bf16_block<7>(a_rest, K_pad, b0, b1, c_rest, N_pad); break;
      case 6: dot_bf16_block<6>(a_rest, K_pad, b0, b1, c_rest, N_pad); break;
      case 5: dot_bf16_block<5>(a_rest, K_pad, b0, b1, c_rest, N_pad); break;
      case 4: dot_bf16_block<4>(a_rest, K_pad, b0, b1, c_rest, N_pad); break;
      case 3: dot_bf16_block<3>(a_rest, K_pad, b0, b1, c_rest, N_pad); break;
      case 2: dot_bf16_block<2>(a_rest, K_pad, b0, b1, c_rest, N_pad); break;
      case 1: dot_bf16_block<1>(a_rest, K_pad, b0, b1, c_rest, N_pad); break;
      default: break;
    }
  }
}
#endif

}  // namespace rnnkit
