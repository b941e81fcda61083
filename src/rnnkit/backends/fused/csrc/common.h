// Shared helpers of the sequence kernels: the threaded packed GEMM, argument checks and the
// "which steps are valid" rule for lengths.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Optional.h>

#include <cmath>
#include <optional>
#include <type_traits>

#if defined(__linux__)
#include <unistd.h>
#endif

#include "activations.h"
#include "buffer_pool.h"
#include "gemm.h"
#include "gemm_amx.h"

// Before a per-unit loop over rows of different buffers: they never overlap, which the compiler
// cannot prove from raw pointers, so without this it vectorizes behind runtime overlap checks or
// not at all (the GRU backward's loop ran scalar: half its time at batch 64, H = 64).
#define RNNKIT_NO_ALIAS _Pragma("GCC ivdep")

namespace rnnkit {

// ---- threaded GEMM over panels ----------------------------------------------------------------
// Below this many multiply-adds a product is too small to split across threads: the fork/join
// costs more than it saves.
constexpr int64_t kParallelWork = 1 << 17;
// The same for one step's recurrent product of a batch too small to split by rows (gemm below):
// a product over a weight that stays in the threads' caches from step to step. Measured at batch
// 1 with 2 threads (LSTM, H = 128, 65k multiply-adds per step, T = 100): split, the forward ran
// 0.88-0.93x the time of one thread and forward + backward 0.88-0.90x; unsplit both were level.
constexpr int64_t kParallelStepWork = 1 << 15;

// C (M x N) = A * B + C, or with overwrite A * B + bias (bias null: zero), C not read. order:
// that of a one-row product's panels (gemm.h), within each thread's share of them.
template <typename T>
inline void gemm(int64_t M, const T* A, int64_t lda, const PackedMatrix<T>& B, T* C, int64_t ldc,
                 bool overwrite = false, const T* bias = nullptr,
                 PanelOrder order = PanelOrder::ascending) {
  if (M * B.K * B.N < kParallelStepWork || B.panels < 2 || at::get_num_threads() < 2 ||
      at::in_parallel_region()) {
    gemm_blocked(M, A, lda, B, C, ldc, 0, B.panels, overwrite, bias, order);
    return;
  }
  at::parallel_for(0, B.panels, 1, [&](int64_t p0, int64_t p1) {
    gemm_blocked(M, A, lda, B, C, ldc, p0, p1, overwrite, bias, order);
  });
}

// One core's L2 in bytes, read once (glibc's sysconf); elsewhere, or unknown, 1 MiB. The plans
// that depend on whether a weight fits it: the row blocks' own weight copies (BlockWeight),
// unit_slices (unit_team.h) and, through the l2_cache_bytes op, the layers' in-loop projection
// (fused/backend.py).
inline int64_t l2_cache_bytes() {
  static const int64_t bytes = [] {
#if defined(__linux__) && defined(_SC_LEVEL2_CACHE_SIZE)
    const long reported = sysconf(_SC_LEVEL2_CACHE_SIZE);
    if (reported > 0) return static_cast<int64_t>(reported);
#endif
    return static_cast<int64_t>(1) << 20;
  }();
  return bytes;
}

// Whether this is an Intel CPU (cpuid's vendor), read once. The plans measured on one Intel host
// and one AMD host that disagreed keep each host's rule by vendor: own weight copies
// (BlockWeight), units over rows (unit_slices), and through the cpu_is_intel op the layers'
// route to oneDNN's LSTM (onednn.py); and the dense engine (dense.h), as MKL dispatches by
// vendor. Other architectures count as not Intel.
inline bool cpu_is_intel() {
  static const bool intel = [] {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_is("intel") != 0;
#else
    return false;
#endif
  }();
  return intel;
}

// ---- the recurrent product of a step -------------------------------------------------------------
// Where a call's recurrent weight is packed from: src (K x N, with strides), or null for no weight
// (an LSTM without projection: nothing is packed or multiplied), and whether the caller asks for
// bfloat16 products (CPU autocast, float32 only), checked here, before any thread starts.
template <typename T>
struct WeightSource {
  const T* src;
  int64_t K, N, stride_k, stride_n;
  bool bf16;

  WeightSource(const T* src, int64_t K, int64_t N, int64_t stride_k, int64_t stride_n,
               bool use_bf16)
      : src(src), K(K), N(N), stride_k(stride_k), stride_n(stride_n),
        bf16(use_bf16 && src != nullptr) {
    if constexpr (std::is_same_v<T, float>) {
      TORCH_CHECK(!bf16 || bf16_products_usable(), "rnnkit fused: bf16=True needs AMX-BF16 or "
                  "AVX512-BF16, which this build or CPU lacks; call with bf16=False");
    } else {
      TORCH_CHECK(!use_bf16, "rnnkit fused: bf16=True takes float32 tensors only");
    }
  }

  // Whether each row block packs its own copy (BlockWeight): a packed weight (padding aside) of
  // at most half of one core's L2 on Intel CPUs, of at most a whole L2 elsewhere.
  bool copied_per_block() const {
    const int64_t limit = cpu_is_intel() ? l2_cache_bytes() / 2 : l2_cache_bytes();
    return K * N * (bf16 ? int64_t(2) : int64_t(sizeof(T))) <= limit;
  }
};

// A recurrent weight packed for the float32 (or float64) packed GEMM above, or for the AMX tiles
// of gemm_amx.h (the AVX512-BF16 dot products of gemm_avx512bf16.h where there are no tiles).
template <typename T>
struct RecurrentWeight {
  bool bf16 = false;
  PackedMatrix<T> full;
  PackedBf16 low;

  // by_all_threads: a copy that every row block reads is packed by every thread
  // (PackedMatrix::pack, PackedBf16::pack).
  explicit RecurrentWeight(const WeightSource<T>& from, bool by_all_threads = false)
      : bf16(from.bf16) {
    if (from.src == nullptr) return;
    if constexpr (std::is_same_v<T, float>) {
      if (bf16) {
        low.pack(from.src, from.K, from.N, from.stride_k, from.stride_n, by_all_threads);
        return;
      }
    }
    full.pack(from.src, from.K, from.N, from.stride_k, from.stride_n, by_all_threads);
  }
};

// The recurrent weight of the row blocks of a plan by rows (for_row_blocks), and of
// rnnkit::linear's packed path (dense.cpp). A weight up to a limit is packed by each block's own
// thread, into a copy that then stays in that core's cache: packed once by the calling thread,
// the other thread's first steps waited for the packed copy to cross from that core's cache.
// Own copies against one shared copy, 2 threads, in one process (own copy's speedup):
//   - Intel Xeon (2 MB L2), forward alone, weights up to 1 MB: T = 1-4 1.1-2.4x (GRU B = 16,
//     H = 128, T = 1: 68 -> 28 us, level with one thread at last), T = 16 1.0-1.3x, T = 100
//     level (0.92-1.09x). At a whole L2 (the character model's bfloat16 W_hh at H = 512, 2 MB)
//     a training step gained nothing (1.19-1.33x torch.nn with them, 1.24-1.34x without), so
//     the limit there is half of L2, as measured.
//   - AMD Zen 4 (1 MB L2), through the layers, B = 16-32: weights up to 1 MB (GRU H <= 256,
//     LSTM H <= 256, Elman H <= 512) T = 1 1.06-4.2x, T = 4 1.04-2.4x, T = 16 1.01-1.25x;
//     T = 100 at B = 16-64 0.97-1.11x. Past L2 (GRU H >= 384, 1.8 MB; LSTM H >= 384, 2.4 MB)
//     T = 1 1.0-3.2x, from T = 4 level (0.94-1.05x). So off Intel the limit is a whole L2.
// A larger weight keeps one copy for all blocks: it streams from L3 at every step anyway, past L2
// the copies gained only at T = 1, and a copy per thread would multiply its footprint in L3 by
// the thread count (not measured: both hosts have 2 cores). All threads pack that copy, a share
// of its panels each (PackedMatrix::pack).
template <typename T>
class BlockWeight {
 public:
  explicit BlockWeight(const WeightSource<T>& source)
      : source_(source), per_block_(source.copied_per_block()),
        shared_(per_block_ ? none(source) : source, /*by_all_threads=*/true) {}

  // The weight for one row block: packed into `own` by the calling thread, or the shared copy.
  const RecurrentWeight<T>& in_block(std::optional<RecurrentWeight<T>>& own) const {
    return per_block_ ? own.emplace(source_) : shared_;
  }

 private:
  static WeightSource<T> none(const WeightSource<T>& source) {
    return WeightSource<T>(nullptr, source.K, source.N, source.stride_k, source.stride_n, false);
  }

  WeightSource<T> source_;
  bool per_block_;  // decided once per call, before any block asks
  RecurrentWeight<T> shared_;
};

// One thread's C = A W + bias (overwrite) or C += A W with a RecurrentWeight, for up to max_rows
// rows. Constructed in the thread that multiplies: on the bfloat16 path it holds that thread's
// tile configuration and padded copies for the whole loop over steps.
template <typename T>
class RecurrentProduct {
 public:
  RecurrentProduct(const RecurrentWeight<T>& weight, int64_t max_rows) : weight_(weight) {
    if (weight.bf16) {
      if (amx_bf16_usable()) tiles_.emplace();
      low_.emplace(weight.low, max_rows);
    }
  }
  // One step's product. Called once per step, so successive calls alternate the panel order
  // (PanelOrder, gemm.h): a weight larger than L2 starts each step on what the last left there.
  void operator()(int64_t M, const T* A, int64_t lda, T* C, int64_t ldc, bool overwrite = false,
                  const T* bias = nullptr) {
    if constexpr (std::is_same_v<T, float>) {
      if (low_) return (*low_)(M, A, lda, C, ldc, overwrite, bias);
    }
    gemm(M, A, lda, weight_.full, C, ldc, overwrite, bias, panel_order_of_step(calls_++));
  }

 private:
  const RecurrentWeight<T>& weight_;
  int64_t calls_ = 0;
  std::optional<AmxTiles> tiles_;
  std::optional<Bf16Product> low_;
};

// ---- threads over batch rows ------------------------------------------------------------------
// Rows of a batch never interact in a recurrence, so each thread can take a block of rows through
// every time step with no synchronization at all: one fork/join per call instead of one per
// step, and the pointwise work is split too. body(b0, b1) runs rows [b0, b1). With one row the
// kernels split the hidden units instead where that pays (unit_team.h), else the per-step GEMM
// over column panels (see gemm above).
inline bool rows_split(int64_t B, int64_t work_per_row) {
  return at::get_num_threads() >= 2 && B >= 2 && B * work_per_row >= kParallelWork &&
         !at::in_parallel_region();
}

template <typename F>
inline void for_row_blocks(int64_t B, int64_t work_per_row, F&& body) {
  if (!rows_split(B, work_per_row)) {
    body(0, B);
    return;
  }
  const int64_t blocks = std::min<int64_t>(at::get_num_threads(), B);
  at::parallel_for(0, blocks, 1, [&](int64_t first, int64_t last) {
    for (int64_t k = first; k < last; ++k) body(k * B / blocks, (k + 1) * B / blocks);
  });
}

// ---- prefetching the next step's rows -----------------------------------------------------------
// The kernels read per-step rows (gates_x[t], saved activations, output gradients) of (T, B, *)
// buffers far larger than L2. The stream is short per step and interrupted by the GEMM, so the
// hardware prefetcher does not keep ahead of it: the LSTM forward's first read of gates_x[t]
// took a third of its non-GEMM time at B = 64, H = 64. Each row of the next step is requested
// while the current step's row is processed, a full step ahead of use (prefetch, gemm.h).

// ---- lengths ---------------------------------------------------------------------------------
// Step t of sequence b is valid when t < lengths[b]. Sequences run t = 0..len-1, or with
// reverse t = len-1..0, so the first step a sequence takes is first_step(b).
struct Steps {
  int64_t T, B;
  bool reverse;
  const int64_t* lengths;  // nullptr: every step valid
  bool valid(int64_t t, int64_t b) const { return lengths == nullptr || t < lengths[b]; }
  int64_t length(int64_t b) const { return lengths == nullptr ? T : lengths[b]; }
  int64_t first_step(int64_t b) const { return reverse ? length(b) - 1 : 0; }
  int64_t time(int64_t s) const { return reverse ? T - 1 - s : s; }      // s-th step of the loop
  int64_t previous(int64_t t) const { return reverse ? t + 1 : t - 1; }  // step before t
  // the time of the loop's step after s (forward) or before s (backward), or -1 past the ends
  int64_t time_after(int64_t s) const { return s + 1 < T ? time(s + 1) : -1; }
  int64_t time_before(int64_t s) const { return s > 0 ? time(s - 1) : -1; }
};

inline Steps make_steps(int64_t T, int64_t B, bool reverse, const c10::optional<at::Tensor>& lengths) {
  const int64_t* ptr = nullptr;
  if (lengths.has_value() && lengths->defined()) {
    TORCH_CHECK(lengths->scalar_type() == at::kLong && lengths->is_contiguous() &&
                    lengths->numel() == B && lengths->device().is_cpu(),
                "rnnkit fused: lengths must be a contiguous int64 CPU tensor of size B");
    ptr = lengths->data_ptr<int64_t>();
    // A length past T would make the kernels read rows beyond their buffers (the reverse
    // direction starts at length - 1), so the ops check what the Python layers already have.
    for (int64_t b = 0; b < B; ++b)
      TORCH_CHECK(ptr[b] >= 1 && ptr[b] <= T, "rnnkit fused: lengths must be in 1..T = ", T,
                  "; got ", ptr[b], " at index ", b);
  }
  return Steps{T, B, reverse, ptr};
}

// Buffers whose padding rows are never written must start at zero; without lengths every row is
// written, and zero-filling them would be a wasted pass over memory.
inline at::Tensor buffer_for(const Steps& steps, at::IntArrayRef shape, const at::TensorOptions& options) {
  return steps.lengths != nullptr ? pooled_zeros(shape, options) : pooled_empty(shape, options);
}

// ---- bfloat16 buffers of the autocast path -------------------------------------------------------
// Under CPU bfloat16 autocast (bf16=True) the input projection may arrive as a bfloat16 gates_x,
// and the gradients the kernels hand on to bfloat16 products (of the projection's backward, of
// dW_hh) leave as bfloat16. Converting those (T, B, G) buffers in separate passes, to float32 and
// back, was a quarter of an LSTM training call under autocast (B = 64, H = 256: ~10 of 39 ms of
// copies). The kernels convert one row at a time while it is in L1 instead; the state and the
// gate arithmetic stay float32.

inline bool is_bf16(const at::Tensor& t) { return t.defined() && t.scalar_type() == at::kBFloat16; }

// The rows gates_x[t, b, :] a forward kernel reads, as T values: in place, or converted from
// bfloat16 into a scratch row of the calling thread (width values).
template <typename T>
struct GateRows {
  const T* full = nullptr;
  const uint16_t* low = nullptr;
  int64_t stride_t = 0, stride_b = 0, width = 0;

  // gates_x undefined (LSTM inference projects inside the loop): no rows.
  explicit GateRows(const at::Tensor& gates_x) {
    if (!gates_x.defined()) return;
    stride_t = gates_x.stride(0);
    stride_b = gates_x.stride(1);
    width = gates_x.size(2);
    if (is_bf16(gates_x)) low = reinterpret_cast<const uint16_t*>(gates_x.data_ptr<at::BFloat16>());
    else full = gates_x.data_ptr<T>();
  }
  const T* row(int64_t t, int64_t b, T* scratch) const {
    const int64_t offset = t * stride_t + b * stride_b;
    if constexpr (std::is_same_v<T, float>) {
      if (low) {
        bf16_to_float(low + offset, scratch, width);
        return scratch;
      }
    }
    return full + offset;
  }
  void prefetch_row(int64_t t, int64_t b) const {
    const int64_t offset = t * stride_t + b * stride_b;
    if (low) prefetch(low + offset, width);
    else prefetch(full + offset, width);
  }
};

// The row stride of a (T, B, width) gradient of T values (GradientRows): the width, plus one
// cache line when a row is a multiple of 2 KB. The weight gradients read these buffers down
// their columns (dW = dG^T X, gemm.h's column-major A), 8 values from each of 128 rows per
// micro-kernel pass; rows 4 or 2 KB apart put those 128 lines in one or two L1 sets, and each
// pass went to L2 for them. The product dG^T X over 1600 rows, 1 thread, AMD Zen 4, GFLOP/s
// plain / padded: 80 / 96 at 2 KB rows (LSTM H = 128), 85 / 93 at 4 KB (H = 256), 94 / 99 at
// 8 KB (H = 512); 1, 1.5 and 3 KB rows were level either way, and 6 KB rows (GRU H = 512),
// which the rule pads too, level padded or not.
inline int64_t gradient_row_stride(int64_t width, int64_t element_size) {
  const bool aliased = width > 0 && (width * element_size) % 2048 == 0;
  return aliased ? width + 64 / element_size : width;
}

// A (T, B, width) gradient a backward kernel writes row by row: T values in place, their rows
// `ld` apart (gradient_row_stride; `tensor` is the (T, B, width) view), or with bf16 bfloat16
// values, `width` apart. On the bfloat16 side each thread computes a step's rows of its block
// in a T scratch block (rows b0..b1, width apart), which the kernel goes on reading (the bias
// gradient, the step's product), and store() rounds a finished row into the buffer.
template <typename T>
struct GradientRows {
  at::Tensor tensor;
  T* full = nullptr;
  uint16_t* low = nullptr;
  int64_t B = 0, width = 0, ld = 0;

  GradientRows(const Steps& steps, int64_t width_, const at::TensorOptions& options, bool bf16)
      : B(steps.B), width(width_) {
    // Buffers whose padding rows (steps past a sequence's length) are never written start at
    // zero (buffer_for). The extra ld - width values of each row are never read.
    if (bf16) {
      ld = width;
      tensor = buffer_for(steps, {steps.T, steps.B, width}, options.dtype(at::kBFloat16));
      low = reinterpret_cast<uint16_t*>(tensor.data_ptr<at::BFloat16>());
    } else {
      ld = gradient_row_stride(width, sizeof(T));
      tensor = buffer_for(steps, {steps.T, steps.B, ld}, options).narrow(2, 0, width);
      full = tensor.data_ptr<T>();
    }
  }
  // Where rows b0.. of step t are computed: the buffer itself, or the thread's scratch block;
  // block_stride() apart.
  T* block(int64_t t, int64_t b0, T* scratch) const { return low ? scratch : row(t, b0); }
  int64_t block_stride() const { return low ? width : ld; }
  // Row (t, b) of the T buffer (not the bfloat16 path).
  T* row(int64_t t, int64_t b) const { return full + (t * B + b) * ld; }
  void store(int64_t t, int64_t b, const T* values) const {
    if constexpr (std::is_same_v<T, float>) {
      if (low) float_to_bf16(values, low + (t * B + b) * width, width);
    }
  }
};

// The state a sequence held before step t: the initial state at its first step, otherwise
// what was saved at the previous step. Rows past a sequence's length are never asked for.
template <typename T>
inline const T* previous_row(const Steps& steps, int64_t t, int64_t b, const T* all, const T* initial,
                             int64_t width) {
  if (t == steps.first_step(b)) return initial + b * width;
  return all + (steps.previous(t) * steps.B + b) * width;
}

// The state each valid (t, b) read before its step, as one (T, B, width) tensor: rows of
// `all` (what the steps wrote) or of `initial`; padding rows zero. The weight gradients are
// then one GEMM over all (t, b): dW = dG^T @ previous.
template <typename T>
inline at::Tensor gather_previous(const Steps& steps, const T* all, const T* initial, int64_t width,
                                  const at::TensorOptions& options) {
  at::Tensor previous = buffer_for(steps, {steps.T, steps.B, width}, options);
  T* dst = previous.data_ptr<T>();
  for (int64_t t = 0; t < steps.T; ++t)
    for (int64_t b = 0; b < steps.B; ++b)
      if (steps.valid(t, b))
        std::memcpy(dst + (t * steps.B + b) * width, previous_row(steps, t, b, all, initial, width),
                    width * sizeof(T));
  return previous;
}

// gather_previous with the rows rounded to bfloat16 on the way: the right side of dW = dG^T @
// previous on the bfloat16 path (weight_gradient_bf16), without a float32 copy to convert.
inline at::Tensor gather_previous_bf16(const Steps& steps, const float* all, const float* initial,
                                       int64_t width, const at::TensorOptions& options) {
  at::Tensor previous = buffer_for(steps, {steps.T, steps.B, width}, options.dtype(at::kBFloat16));
  uint16_t* dst = reinterpret_cast<uint16_t*>(previous.data_ptr<at::BFloat16>());
  for (int64_t t = 0; t < steps.T; ++t)
    for (int64_t b = 0; b < steps.B; ++b)
      if (steps.valid(t, b))
        float_to_bf16(previous_row(steps, t, b, all, initial, width), dst + (t * steps.B + b) * width,
                      width);
  return previous;
}

// The previous states for dW_hh: float32 (T) rows, or with bf16 bfloat16 ones.
template <typename T>
inline at::Tensor gather_previous(const Steps& steps, const T* all, const T* initial, int64_t width,
                                  const at::TensorOptions& options, bool bf16) {
  if constexpr (std::is_same_v<T, float>) {
    if (bf16) return gather_previous_bf16(steps, all, initial, width, options);
  }
  return gather_previous<T>(steps, all, initial, width, options);
}

// The gradient of a bias added at every step: the sum over all valid (t, b) of rows of dG,
// gathered while each row is still in L1 (a separate sum re-read the whole (T, B, G) buffer).
// Each batch row accumulates its own steps, so threads (which own rows) never share an
// accumulator and the result does not depend on the thread count; accumulating in double keeps
// float32 sums over long sequences as exact as at::sum's.
template <typename T>
struct BiasGradient {
  int64_t width;
  std::vector<double> rows;  // B x width

  BiasGradient(int64_t B, int64_t width_) : width(width_), rows(B * width_, 0.0) {}

  void add(int64_t b, const T* grad_row) { add_units(b, 0, grad_row, width); }

  // Values [offset, offset + count) of row b's gradient (a thread's units, unit_team.h).
  void add_units(int64_t b, int64_t offset, const T* values, int64_t count) {
    double* acc = rows.data() + b * width + offset;
    RNNKIT_NO_ALIAS
    for (int64_t j = 0; j < count; ++j) acc[j] += values[j];
  }

  at::Tensor total(const at::TensorOptions& options) const {
    std::vector<double> sum(width, 0.0);
    for (size_t offset = 0; offset < rows.size(); offset += width)
      for (int64_t j = 0; j < width; ++j) sum[j] += rows[offset + j];
    at::Tensor out = at::empty({width}, options);
    T* dst = out.data_ptr<T>();
    for (int64_t j = 0; j < width; ++j) dst[j] = static_cast<T>(sum[j]);
    return out;
  }
};

// gates_x of a forward op: float32 or float64 like the state, or bfloat16 with bf16=True and a
// float32 state (the autocast path).
inline void check_gates_x(const at::Tensor& gates_x, const at::Tensor& h0, bool bf16) {
  TORCH_CHECK(gates_x.device().is_cpu(), "rnnkit fused: gates_x must be on the CPU");
  if (is_bf16(gates_x)) {
    TORCH_CHECK(bf16 && h0.scalar_type() == at::kFloat, "rnnkit fused: a bfloat16 gates_x needs "
                "bf16=True and a float32 state; pass float32 gates_x otherwise");
    return;
  }
  TORCH_CHECK(gates_x.scalar_type() == h0.scalar_type(), "rnnkit fused: gates_x is ",
              gates_x.scalar_type(), " but the state is ", h0.scalar_type(), "; pass both in one dtype");
}

// The shapes of a forward op's gates_x (T, B, gates * H) and state h0 (B, width), and of its
// W_hh (gates * H, width): the kernels index all three by these sizes.
inline void check_shapes(const at::Tensor& gates_x, const at::Tensor& h0, const at::Tensor& weight_hh,
                         int64_t gates, int64_t hidden) {
  TORCH_CHECK(gates_x.dim() == 3 && h0.dim() == 2 && h0.size(0) == gates_x.size(1) &&
                  gates_x.size(2) == gates * hidden && weight_hh.dim() == 2 &&
                  weight_hh.size(0) == gates * hidden && weight_hh.size(1) == h0.size(1),
              "rnnkit fused: shapes do not fit together: gates_x ", gates_x.sizes(), ", h0 ",
              h0.sizes(), ", weight_hh ", weight_hh.sizes(), " (expected (T, B, ", gates,
              " H), (B, width) and (", gates, " H, width) with H = ", hidden, ")");
}

// A bias given (not None) holds n values of the state's dtype: the kernels read n values from it.
inline void check_bias(const c10::optional<at::Tensor>& bias, const at::Tensor& h0, int64_t n,
                       const char* name) {
  if (!bias.has_value() || !bias->defined()) return;
  TORCH_CHECK(bias->numel() == n && bias->scalar_type() == h0.scalar_type(), "rnnkit fused: ",
              name, " must hold ", n, " values of ", h0.scalar_type(), "; got ", bias->scalar_type(),
              " of shape ", bias->sizes());
}

// The LSTM's cell state c0 (B, H) and projection weight_hr (P, H), where h0 is (B, P); without
// a projection P = H.
inline void check_lstm_state(const at::Tensor& h0, const at::Tensor& c0,
                             const c10::optional<at::Tensor>& weight_hr, int64_t hidden) {
  TORCH_CHECK(c0.dim() == 2 && c0.size(0) == h0.size(0) && c0.size(1) == hidden &&
                  c0.scalar_type() == h0.scalar_type(),
              "rnnkit fused: c0 must be (B, H) = (", h0.size(0), ", ", hidden, ") of ",
              h0.scalar_type(), "; got ", c0.scalar_type(), " of shape ", c0.sizes());
  const bool proj = weight_hr.has_value() && weight_hr->defined();
  TORCH_CHECK(proj ? weight_hr->dim() == 2 && weight_hr->size(0) == h0.size(1) &&
                         weight_hr->size(1) == hidden &&
                         weight_hr->scalar_type() == h0.scalar_type()
                   : h0.size(1) == hidden,
              "rnnkit fused: h0 ", h0.sizes(), " and weight_hr ",
              proj ? c10::str(weight_hr->sizes()) : std::string("None"),
              " do not fit H = ", hidden, " (expected weight_hr (P, H) with h0 (B, P), or no "
              "weight_hr and P = H)");
}

// The backward ops take the forward's saved tensors and the gradients of its outputs: each must
// have the shape the forward gave it, or the kernels read past its end.
inline void check_shape(const at::Tensor& t, at::IntArrayRef expected, const char* name) {
  TORCH_CHECK(t.sizes() == expected, "rnnkit fused: ", name, " must have shape ", expected,
              " (the forward's); got ", t.sizes());
}

inline void check_cpu_float(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), "rnnkit fused: ", name, " must be on the CPU");
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble,
              "rnnkit fused: ", name, " must be float32 or float64");
}

}  // namespace rnnkit
