// bfloat16 recurrent products on AMX tiles: C (M x N) = A (M x K) * B (K x N), float32 in and out.
//
// Under CPU bfloat16 autocast the fused GRU and Elman kernels (and the LSTM with a projection or
// lengths) may run their per-step products h W_hh^T and dG W_hh here instead of the float32
// packed GEMM of gemm.h. Each operand is rounded to bfloat16 (round to nearest even) and the
// products are summed in float32 by the AMX unit (TDPBF16PS), so
//     C = bf16(A) bf16(B), accumulated in float32,
// where torch.nn's layers under the same autocast also round C to bfloat16. One 16 x 32 x 16
// tile product is 8192 multiply-adds; a 32-row block of a GRU step at H = 512 (32 x 512 x 1536)
// took 56 us on one core of the Intel host against ~300 us for the float32 GEMM.
//
// Layout. B is packed once per call into 16-column blocks of K/2 pairs: tile (n_block, k_chunk)
// is 16 rows (pairs k, k+1 of a 32-deep chunk) x 16 columns x 2 values = 1 KB, the VNNI layout
// TDPBF16PS reads, and the chunks of one column block are adjacent, so the k loop streams
// memory. K and N are zero padded to multiples of 32. Each step converts A to a zero-padded
// bfloat16 copy (rows padded to 16), multiplies into a padded float32 block and writes C from it
// (adding the bias, or accumulating), so no tile ever touches memory past a buffer's end.
//
// Tiles are per thread: AmxTiles loads the tile configuration in the thread that multiplies and
// releases it when it goes out of scope. The kernel needs the OS to grant the AMX state to the
// process (arch_prctl; Linux 5.16+), checked once by amx_bf16_usable(). Where the tiles are not
// usable but the CPU has AVX512-BF16 (AMD Zen 4 and later), Bf16Product multiplies the same
// packed weight with VDPBF16PS dot products instead (gemm_avx512bf16.h).
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#if defined(__AMX_TILE__) && defined(__AMX_BF16__) && defined(__AVX512BF16__)
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#define RNNKIT_AMX 1
#else
#define RNNKIT_AMX 0
#endif
#include "gemm.h"  // pack_splits_over_threads; transpose_16x16 (gemm_avx512.h)
#include "gemm_avx512bf16.h"

namespace rnnkit {

// Whether this build has the AMX kernel and the OS lets the process use the tiles.
inline bool amx_bf16_usable() {
#if RNNKIT_AMX
  static const bool usable = [] {
    constexpr long kRequestPermission = 0x1023;  // ARCH_REQ_XCOMP_PERM
    constexpr long kTileData = 18;               // XFEATURE_XTILEDATA
    return syscall(SYS_arch_prctl, kRequestPermission, kTileData) == 0;
  }();
  return usable;
#else
  return false;
#endif
}

// Whether bf16=True products can run in this build and process: on the AMX tiles, or else with
// the AVX512-BF16 dot products (an AMX build has those too).
inline bool bf16_products_usable() { return amx_bf16_usable() || RNNKIT_AVX512_BF16; }

// Which kernel runs them: "amx", "avx512_bf16", or "" (none: bf16=True is refused).
inline const char* bf16_products_kernel() {
  return amx_bf16_usable() ? "amx" : RNNKIT_AVX512_BF16 ? "avx512_bf16" : "";
}

// float32 -> bfloat16 bits, round to nearest even (what _mm512_cvtneps_pbh does, for the pack).
inline uint16_t bf16_bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);  // NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

// Rows of bfloat16 values (as uint16 bits) to float32, exactly: the bits are the top half.
inline void bf16_to_float(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
#if defined(__AVX512F__)
  for (; i + 16 <= n; i += 16) {
    const __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i)));
    _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16)));
  }
#endif
  for (; i < n; ++i) {
    const uint32_t bits = uint32_t(src[i]) << 16;
    std::memcpy(dst + i, &bits, sizeof bits);
  }
}

// Rows of float32 values to bfloat16 bits, round to nearest even.
inline void float_to_bf16(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
#if RNNKIT_AVX512_BF16
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(src + i)));
#endif
  for (; i < n; ++i) dst[i] = bf16_bits(src[i]);
}

#if defined(__AVX512F__)
// bf16_bits of 16 floats at once, the same integer arithmetic (so the same bits, NaN and
// denormals included): lane j of the result holds the bits of v[j] in its low 16 bits.
inline __m512i bf16_bits_x16(__m512 v) {
  const __m512i bits = _mm512_castps_si512(v);
  const __m512i high = _mm512_srli_epi32(bits, 16);
  const __m512i rounded = _mm512_srli_epi32(
      _mm512_add_epi32(bits, _mm512_add_epi32(_mm512_set1_epi32(0x7fff),
                                              _mm512_and_si512(high, _mm512_set1_epi32(1)))),
      16);
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(
      _mm512_and_si512(bits, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
  return _mm512_mask_blend_epi32(nan, rounded, _mm512_or_si512(high, _mm512_set1_epi32(0x40)));
}
#endif

struct PackedBf16 {
  static constexpr int64_t kChunk = 32;  // depth of one tile product
  static constexpr int64_t kTileValues = 512;  // 16 pair rows x 16 columns x 2
  int64_t K = 0, N = 0, K_pad = 0, N_pad = 0;
  // (N_pad / 16) column blocks x (K_pad / 32) tiles, in pooled memory (buffer_pool.h), as
  // PackedMatrix's values: as a std::vector, every pack of an LSTM's W_hh at H = 512 (2 MB)
  // zero-filled it, and took fresh pages whenever glibc had handed the last block back.
  PooledBlock owned;
  const uint16_t* values() const { return static_cast<const uint16_t*>(owned.get()); }

  // Pack B where element (k, n) is at src[k * stride_k + n * stride_n] (as PackedMatrix::pack;
  // by_all_threads as there: every thread packs a share of the column blocks).
  void pack(const float* src, int64_t K_, int64_t N_, int64_t stride_k, int64_t stride_n,
            bool by_all_threads = false) {
    K = K_;
    N = N_;
    K_pad = (K + kChunk - 1) / kChunk * kChunk;
    N_pad = (N + 31) / 32 * 32;
    const size_t bytes = size_t(K_pad * N_pad) * sizeof(uint16_t);
    owned.reserve(bytes);
    // The vectorized paths of pack_block write every value of a tile, zero padding included;
    // the element loop writes only the values inside K x N, so it needs zeros around them.
    if (bytes > 0 && !whole_tiles(stride_k, stride_n)) std::memset(owned.get(), 0, bytes);
    const int64_t blocks = N_pad / 16;
    const auto pack_blocks = [&](int64_t first, int64_t last) {
      for (int64_t nb = first; nb < last; ++nb) pack_block(src, nb, stride_k, stride_n);
    };
    if (pack_splits_over_threads(by_all_threads, K_pad * N_pad * int64_t(sizeof(uint16_t)))) {
      at::parallel_for(0, blocks, 1, pack_blocks);
    } else {
      pack_blocks(0, blocks);
    }
  }
  const uint16_t* column_block(int64_t nb) const { return values() + nb * (K_pad / kChunk) * kTileValues; }

 private:
  // Whether pack_block writes whole tiles for this layout (its vectorized paths).
  static bool whole_tiles(int64_t stride_k, int64_t stride_n) {
#if defined(__AVX512F__)
    return stride_k == 1 || stride_n == 1;
#else
    (void)stride_k, (void)stride_n;
    return false;
#endif
  }

  // Column block nb (16 columns), one tile per 32-deep chunk. A tile holds, for each pair row
  // p (depths 2p and 2p + 1 of the chunk) and column c, the 32-bit word of the two values at
  // word p * 16 + c. The element loop converted one value at a time and took ~4 ms for an
  // LSTM's W_hh at H = 512, most of a short call. With W^T (stride_k = 1, the forward products)
  // each column's chunk is two vectors of W's row, converted at once and paired into 16 words,
  // and a 16 x 16 transpose of the block's words gives the tile; with W itself (stride_n = 1,
  // backward's dG W) each pair row is two rows' values interleaved.
  void pack_block(const float* src, int64_t nb, int64_t stride_k, int64_t stride_n) {
    const int64_t chunks = K_pad / kChunk;
    for (int64_t kc = 0; kc < chunks; ++kc) {
      uint16_t* tile = static_cast<uint16_t*>(owned.get()) + (nb * chunks + kc) * kTileValues;
#if defined(__AVX512F__)
      if (stride_k == 1) {
        const int64_t k0 = kc * kChunk;
        const int64_t depth = std::min<int64_t>(kChunk, K - k0);
        const __mmask16 low = depth >= 16 ? 0xFFFF : (__mmask16)((1u << depth) - 1);
        const __mmask16 high = depth <= 16 ? 0 : depth >= 32 ? 0xFFFF : (__mmask16)((1u << (depth - 16)) - 1);
        __m512 words[16];
        for (int64_t c = 0; c < 16; ++c) {
          const int64_t n = nb * 16 + c;
          if (n >= N) {
            words[c] = _mm512_setzero_ps();
            continue;
          }
          const float* column = src + n * stride_n + k0;
          const __m256i first = _mm512_cvtepi32_epi16(bf16_bits_x16(_mm512_maskz_loadu_ps(low, column)));
          const __m256i second = _mm512_cvtepi32_epi16(bf16_bits_x16(_mm512_maskz_loadu_ps(high, column + 16)));
          words[c] = _mm512_castsi512_ps(
              _mm512_inserti64x4(_mm512_castsi256_si512(first), second, 1));
        }
        transpose_16x16(words);
        for (int64_t pair = 0; pair < 16; ++pair) _mm512_storeu_ps(tile + pair * 32, words[pair]);
        continue;
      }
      if (stride_n == 1) {  // B itself row-major (W_hh in backward): a row is 16 columns' values
        // the last block may lie wholly in the padding past N: nothing is read there
        const int64_t n0 = nb * 16, width = std::max<int64_t>(0, std::min<int64_t>(16, N - n0));
        const __mmask16 columns = width >= 16 ? 0xFFFF : (__mmask16)((1u << width) - 1);
        for (int64_t pair = 0; pair < 16; ++pair) {
          const int64_t k = kc * kChunk + 2 * pair;
          const __m512i even = k < K ? bf16_bits_x16(_mm512_maskz_loadu_ps(columns, src + k * stride_k + n0))
                                     : _mm512_setzero_si512();
          const __m512i odd = k + 1 < K ? bf16_bits_x16(_mm512_maskz_loadu_ps(columns, src + (k + 1) * stride_k + n0))
                                        : _mm512_setzero_si512();
          _mm512_storeu_si512(tile + pair * 32, _mm512_or_si512(even, _mm512_slli_epi32(odd, 16)));
        }
        continue;
      }
#endif
      for (int64_t c = 0; c < 16; ++c) {
        const int64_t n = nb * 16 + c;
        if (n >= N) break;
        for (int64_t pair = 0; pair < 16; ++pair)
          for (int64_t e = 0; e < 2; ++e) {
            const int64_t k = kc * kChunk + 2 * pair + e;
            if (k < K) tile[(pair * 16 + c) * 2 + e] = bf16_bits(src[k * stride_k + n * stride_n]);
          }
      }
    }
  }
};

#if RNNKIT_AMX
// The tile configuration (palette 1): all eight tiles 16 rows x 64 bytes.
struct AmxTiles {
  AmxTiles() {
    alignas(64) struct {
      uint8_t palette, start_row, reserved[14];
      uint16_t bytes_per_row[16];
      uint8_t rows[16];
    } config{};
    config.palette = 1;
    for (int tile = 0; tile < 8; ++tile) {
      config.bytes_per_row[tile] = 64;
      config.rows[tile] = 16;
    }
    _tile_loadconfig(&config);
  }
  ~AmxTiles() { _tile_release(); }
  AmxTiles(const AmxTiles&) = delete;
  AmxTiles& operator=(const AmxTiles&) = delete;
};
#else
struct AmxTiles {};
#endif

// One thread's bfloat16 product for a fixed B and up to max_rows rows of A: the padded copies
// live here, allocated once per call and thread. On the AMX tiles where they are usable (the
// caller holds an AmxTiles in this thread), else with AVX512-BF16 dot products.
class Bf16Product {
 public:
  Bf16Product(const PackedBf16& B, int64_t max_rows)
      : B_(B), tiles_(amx_bf16_usable()), rows_pad_((max_rows + 15) / 16 * 16),
        a_(rows_pad_ * B.K_pad, 0), c_(rows_pad_ * B.N_pad) {}

  // C = A B + bias (overwrite; bias null: zero) or C += A B, for M <= max_rows rows.
  void operator()(int64_t M, const float* A, int64_t lda, float* C, int64_t ldc, bool overwrite,
                  const float* bias = nullptr) {
#if RNNKIT_AVX512_BF16
    convert_rows(M, A, lda);
    if (tiles_) {
      multiply_on_tiles((M + 15) / 16 * 16);
    } else {
      dot_bf16_multiply(M, a_.data(), B_.K_pad, B_.N_pad, B_.values(), c_.data());
    }
    const int64_t N = B_.N;
    for (int64_t m = 0; m < M; ++m) {
      const float* product = c_.data() + m * B_.N_pad;
      float* row = C + m * ldc;
      if (!overwrite) {
        _Pragma("GCC ivdep") for (int64_t n = 0; n < N; ++n) row[n] += product[n];
      } else if (bias) {
        _Pragma("GCC ivdep") for (int64_t n = 0; n < N; ++n) row[n] = product[n] + bias[n];
      } else {
        std::memcpy(row, product, N * sizeof(float));
      }
    }
#else
    (void)M, (void)A, (void)lda, (void)C, (void)ldc, (void)overwrite, (void)bias;
#endif
  }

 private:
#if RNNKIT_AVX512_BF16
  // A's rows into the padded bfloat16 copy; columns past K become zero (masked loads), rows past
  // M stay zero from the allocation.
  void convert_rows(int64_t M, const float* A, int64_t lda) {
    const int64_t K = B_.K;
    for (int64_t m = 0; m < M; ++m) {
      const float* src = A + m * lda;
      uint16_t* dst = a_.data() + m * B_.K_pad;
      for (int64_t k = 0; k < B_.K_pad; k += 16) {
        const int64_t left = K - k;
        const __mmask16 mask = left >= 16 ? __mmask16(0xffff) : left > 0 ? __mmask16((1u << left) - 1) : 0;
        const __m256bh bf = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mask, src + k));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + k), (__m256i)bf);
      }
    }
  }
#endif

  // The padded product: 32 x 32 blocks of C in four tiles (two of A's row tiles, two column
  // blocks of B), or 16 x 32 for a last odd row tile. Tiles: 0-3 C, 4-5 A, 6-7 B.
  void multiply_on_tiles(int64_t rows) {
#if RNNKIT_AMX
    const int64_t chunks = B_.K_pad / PackedBf16::kChunk;
    const int64_t a_stride = B_.K_pad * 2, c_stride = B_.N_pad * 4;
    for (int64_t m = 0; m < rows; m += 32) {
      const bool two = m + 16 < rows;
      const uint16_t* a0 = a_.data() + m * B_.K_pad;
      const uint16_t* a1 = a0 + 16 * B_.K_pad;
      for (int64_t nb = 0; nb < B_.N_pad / 16; nb += 2) {
        const uint16_t* b0 = B_.column_block(nb);
        const uint16_t* b1 = B_.column_block(nb + 1);
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        for (int64_t kc = 0; kc < chunks; ++kc) {
          _tile_loadd(4, a0 + kc * PackedBf16::kChunk, a_stride);
          _tile_loadd(6, b0 + kc * PackedBf16::kTileValues, 64);
          _tile_loadd(7, b1 + kc * PackedBf16::kTileValues, 64);
          _tile_dpbf16ps(0, 4, 6);
          _tile_dpbf16ps(1, 4, 7);
          if (two) {
            _tile_loadd(5, a1 + kc * PackedBf16::kChunk, a_stride);
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
          }
        }
        float* c = c_.data() + m * B_.N_pad + nb * 16;
        _tile_stored(0, c, c_stride);
        _tile_stored(1, c + 16, c_stride);
        if (two) {
          _tile_stored(2, c + 16 * B_.N_pad, c_stride);
          _tile_stored(3, c + 16 * B_.N_pad + 16, c_stride);
        }
      }
    }
#else
    (void)rows;
#endif
  }

  const PackedBf16& B_;
  bool tiles_;
  int64_t rows_pad_;
  std::vector<uint16_t> a_;
  std::vector<float> c_;
};

}  // namespace rnnkit
