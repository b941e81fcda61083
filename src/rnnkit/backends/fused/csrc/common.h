// Shared helpers of the sequence kernels: the threaded packed GEMM, argument checks and the
// "which steps are valid" rule for lengths.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Optional.h>

#include <cmath>
#include <optional>
#include <type_traits>

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
// Below this many multiply-adds a step's matmul is too small to split across threads: the
// fork/join costs more than it saves.
constexpr int64_t kParallelWork = 1 << 17;

// C (M x N) = A * B + C, or with overwrite A * B + bias (bias null: zero), C not read.
template <typename T>
inline void gemm(int64_t M, const T* A, int64_t lda, const PackedMatrix<T>& B, T* C, int64_t ldc,
                 bool overwrite = false, const T* bias = nullptr) {
  if (M * B.K * B.N < kParallelWork || B.panels < 2 || at::get_num_threads() < 2 ||
      at::in_parallel_region()) {
    gemm_blocked(M, A, lda, B, C, ldc, 0, B.panels, overwrite, bias);
    return;
  }
  at::parallel_for(0, B.panels, 1, [&](int64_t p0, int64_t p1) {
    gemm_blocked(M, A, lda, B, C, ldc, p0, p1, overwrite, bias);
  });
}

// ---- the recurrent product of a step -------------------------------------------------------------
// A call's recurrent weight, packed once: for the float32 (or float64) packed GEMM above, or, when
// the caller asks for bfloat16 (CPU autocast, float32 only), for the AMX kernel of gemm_amx.h.
template <typename T>
struct RecurrentWeight {
  bool bf16 = false;
  PackedMatrix<T> full;
  PackedBf16 low;

  // src null: no weight (an LSTM without projection); nothing is packed or multiplied.
  RecurrentWeight(const T* src, int64_t K, int64_t N, int64_t stride_k, int64_t stride_n, bool use_bf16) {
    if (src == nullptr) return;
    if constexpr (std::is_same_v<T, float>) {
      if (use_bf16) {
        TORCH_CHECK(amx_bf16_usable(), "rnnkit fused: bf16=True needs the AMX-BF16 kernel, which "
                    "this build, CPU or OS lacks; call with bf16=False");
        bf16 = true;
        low.pack(src, K, N, stride_k, stride_n);
        return;
      }
    } else {
      TORCH_CHECK(!use_bf16, "rnnkit fused: bf16=True takes float32 tensors only");
    }
    full.pack(src, K, N, stride_k, stride_n);
  }
};

// One thread's C = A W + bias (overwrite) or C += A W with a RecurrentWeight, for up to max_rows
// rows. Constructed in the thread that multiplies: on the bfloat16 path it holds that thread's
// tile configuration and padded copies for the whole loop over steps.
template <typename T>
class RecurrentProduct {
 public:
  RecurrentProduct(const RecurrentWeight<T>& weight, int64_t max_rows) : weight_(weight) {
    if (weight.bf16) {
      tiles_.emplace();
      low_.emplace(weight.low, max_rows);
    }
  }
  void operator()(int64_t M, const T* A, int64_t lda, T* C, int64_t ldc, bool overwrite = false,
                  const T* bias = nullptr) {
    if constexpr (std::is_same_v<T, float>) {
      if (low_) return (*low_)(M, A, lda, C, ldc, overwrite, bias);
    }
    gemm(M, A, lda, weight_.full, C, ldc, overwrite, bias);
  }

 private:
  const RecurrentWeight<T>& weight_;
  std::optional<AmxTiles> tiles_;
  std::optional<Bf16Product> low_;
};

// ---- threads over batch rows ------------------------------------------------------------------
// Rows of a batch never interact in a recurrence, so each thread can take a block of rows through
// every time step with no synchronization at all: one fork/join per call instead of one per
// step, and the pointwise work is split too. body(b0, b1) runs rows [b0, b1). With one thread or
// one row the per-step GEMM is split over column panels instead (see gemm above).
template <typename F>
inline void for_row_blocks(int64_t B, int64_t work_per_row, F&& body) {
  const int64_t threads = at::get_num_threads();
  if (threads < 2 || B < 2 || B * work_per_row < kParallelWork || at::in_parallel_region()) {
    body(0, B);
    return;
  }
  const int64_t blocks = std::min(threads, B);
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
  }
  return Steps{T, B, reverse, ptr};
}

// Buffers whose padding rows are never written must start at zero; without lengths every row is
// written, and zero-filling them would be a wasted pass over memory.
inline at::Tensor buffer_for(const Steps& steps, at::IntArrayRef shape, const at::TensorOptions& options) {
  return steps.lengths != nullptr ? pooled_zeros(shape, options) : pooled_empty(shape, options);
}

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

  void add(int64_t b, const T* grad_row) {
    double* acc = rows.data() + b * width;
    RNNKIT_NO_ALIAS
    for (int64_t j = 0; j < width; ++j) acc[j] += grad_row[j];
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

inline void check_cpu_float(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), "rnnkit fused: ", name, " must be on the CPU");
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble,
              "rnnkit fused: ", name, " must be float32 or float64");
}

}  // namespace rnnkit
