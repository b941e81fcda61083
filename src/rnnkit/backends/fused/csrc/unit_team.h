// Threads over hidden units: the sequence kernels' parallel plan when the batch is too small to
// split by rows (batch 1).
//
// Rows of a batch never interact, so larger batches give each thread a block of rows and need no
// synchronization (common.h, for_row_blocks). At batch 1 there is one row, and splitting each
// step's recurrent product over column panels (common.h, gemm) costs a fork/join per step: at
// H = 256 with 2 threads an LSTM inference step took 10.7 us, 2.5x a single thread's rate on
// half the weights. Here the hidden units are split instead, once per call. Thread k owns units
// [u0, u1) for every step:
//   - it packs its own rows of the weights (W_hh's rows g H + u for the forward, its columns u
//     for the backward), which then stay in that core's L2 from step to step;
//   - each step it multiplies the whole previous state by its slice, runs the cell for its units,
//     and writes its slice of the new state;
//   - one spin barrier per step (SpinBarrier) publishes the new state to the other threads.
// So one fork/join per call, and the pointwise work is split as well.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "gemm.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

namespace rnnkit {

// Smallest per-step recurrent product (multiply-adds) worth splitting. The barrier itself is
// cheap (~0.04 us per step with 2 threads here), but each step then reads the other threads'
// units of the state from their caches. LSTM at batch 1, forward op, 2 threads split against 1
// thread (us per step, two runs): H = 32 (4k per step) 0.44 against 0.30, H = 64 (16k) 0.85-1.02
// against 0.90, H = 128 (65k) 1.9-2.1 against 3.0-3.7.
constexpr int64_t kUnitSplitWork = 1 << 15;
// Units per slice are whole SIMD groups of this many.
constexpr int64_t kUnitGroup = 16;

// A barrier for the threads of one team, spinning: a step lasts microseconds, far less than a
// sleep and wake-up through the OS. Each arrival counts the slices its thread stands for, so a
// thread that was handed every slice (a team of one) passes straight through, and the barrier
// cannot wait for a thread the runtime did not start.
class SpinBarrier {
 public:
  explicit SpinBarrier(int64_t slices) : slices_(slices) {}

  void arrive_and_wait(int64_t weight) {
    const int64_t generation = generation_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(weight, std::memory_order_acq_rel) + weight == slices_) {
      arrived_.store(0, std::memory_order_relaxed);
      generation_.store(generation + 1, std::memory_order_release);
      return;
    }
    // After a long wait (the other vCPU descheduled by the host) give the core away instead of
    // burning it.
    for (int64_t spins = 0; generation_.load(std::memory_order_acquire) == generation; ++spins) {
      if (spins < kSpinsBeforeYield) {
#if defined(__x86_64__) || defined(_M_X64)
        _mm_pause();
#endif
      } else {
        std::this_thread::yield();
      }
    }
  }

 private:
  static constexpr int64_t kSpinsBeforeYield = 1 << 14;
  alignas(64) std::atomic<int64_t> arrived_{0};
  alignas(64) std::atomic<int64_t> generation_{0};
  const int64_t slices_;
};

// How many slices the units of a call split into: 1 (no unit split) unless there are several
// threads, the rows will not be split instead (rows_split), and a step's recurrent product
// (rows x K x N multiply-adds) is worth a barrier.
inline int64_t unit_slices(int64_t H, int64_t step_work, bool rows_split) {
  const int64_t threads = at::get_num_threads();
  if (threads < 2 || rows_split || at::in_parallel_region() || step_work < kUnitSplitWork) return 1;
  return std::max<int64_t>(1, std::min(threads, H / kUnitGroup));
}

// First unit of slice k of `slices` over H units: whole groups of kUnitGroup, the remainder to
// the last slice.
inline int64_t slice_start(int64_t k, int64_t slices, int64_t H) {
  if (k >= slices) return H;
  return (H / kUnitGroup) * k / slices * kUnitGroup;
}

// Runs body(u0, u1, weight, barrier) once per thread of a team over `slices` slices of H units:
// the thread owns units [u0, u1) and stands for `weight` slices at the barrier. Nothing in body
// may throw after its first barrier: a thread that left would leave the others waiting.
template <typename F>
inline void for_unit_slices(int64_t H, int64_t slices, F&& body) {
  SpinBarrier barrier(slices);
  at::parallel_for(0, slices, 1, [&](int64_t first, int64_t last) {
    body(slice_start(first, slices, H), slice_start(last, slices, H), last - first, barrier);
  });
}

// Rows g H + u (g < gates, u in [u0, u1)) of a row-major (gates H, K) weight W, packed as the
// right-hand side of x W_slice^T: K x gates (u1 - u0), gate after gate. One thread's share of a
// step's product, laid out as the cell reads it (cell_row with H = u1 - u0).
template <typename T>
inline PackedMatrix<T> pack_unit_rows(const T* W, int64_t K, int64_t H, int64_t gates, int64_t u0,
                                      int64_t u1) {
  const int64_t n = u1 - u0;
  std::vector<T> rows(gates * n * K);
  for (int64_t g = 0; g < gates; ++g)
    std::memcpy(rows.data() + g * n * K, W + (g * H + u0) * K, n * K * sizeof(T));
  PackedMatrix<T> packed;
  packed.pack(rows.data(), K, gates * n, 1, K);
  return packed;
}

// The values g H + u of a gates H vector (a bias), in the same order; empty for a null vector.
template <typename T>
inline std::vector<T> gather_units(const T* v, int64_t H, int64_t gates, int64_t u0, int64_t u1) {
  std::vector<T> out;
  if (v == nullptr) return out;
  for (int64_t g = 0; g < gates; ++g) out.insert(out.end(), v + g * H + u0, v + g * H + u1);
  return out;
}

}  // namespace rnnkit
