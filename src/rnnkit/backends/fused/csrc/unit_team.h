// Threads over hidden units: the sequence kernels' parallel plan when the batch is too small to
// split by rows (batch 1).
//
// Rows of a batch never interact, so larger batches give each thread a block of rows and need no
// synchronization (common.h, for_row_blocks). At batch 1 there is one row, and splitting each
// step's recurrent product over column panels (common.h, gemm) costs a fork/join per step
// (~0.64 us with 2 threads here) and leaves the cell's pointwise work to one thread: the LSTM
// forward at H = 256 took 7.7-15 us per step that way, 6-8.6 us with the plan below. Here the
// hidden units are split instead, once per call. Thread k owns units [u0, u1) for every step:
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
#include <limits>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#endif

#include "buffer_pool.h"
#include "common.h"
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
    if (abandoned_.load(std::memory_order_relaxed)) return;
    const int64_t generation = generation_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(weight, std::memory_order_acq_rel) + weight == slices_) {
      arrived_.store(0, std::memory_order_relaxed);
      generation_.store(generation + 1, std::memory_order_release);
      return;
    }
    // After a short spin give the core away: when the team has more threads than free cores
    // (a CPU quota, other busy processes) the thread we wait for may need this very core. With
    // 16k pauses before the first yield, 2 threads on 1 core took 42 ms for an LSTM inference
    // at B = 1, H = 128, T = 100 (the per-step fork/join of libgomp: 1.7 ms; 2 cores: 0.3 ms).
    for (int64_t spins = 0; generation_.load(std::memory_order_acquire) == generation &&
                            !abandoned_.load(std::memory_order_relaxed);
         ++spins) {
      if (spins < kSpinsBeforeYield) {
#if defined(__x86_64__) || defined(_M_X64)
        _mm_pause();
#endif
      } else {
        std::this_thread::yield();
      }
    }
  }

  // A thread that leaves the team early (an exception) releases the others: from then on no
  // wait blocks, they run out their loops on whatever they hold, and the caller gets the error.
  void abandon() { abandoned_.store(true, std::memory_order_relaxed); }

 private:
  static constexpr int64_t kSpinsBeforeYield = 256;  // a few microseconds of pause
  std::atomic<bool> abandoned_{false};
  alignas(64) std::atomic<int64_t> arrived_{0};
  alignas(64) std::atomic<int64_t> generation_{0};
  const int64_t slices_;
};

// CPUs in this process's affinity mask (taskset, cpusets), read once; other systems: no limit.
inline int64_t usable_cpus() {
  static const int64_t cpus = [] {
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) return static_cast<int64_t>(CPU_COUNT(&set));
#endif
    return std::numeric_limits<int64_t>::max();
  }();
  return cpus;
}

// Where the units plan beats the split by rows although the rows could split. Split by rows,
// each thread multiplies its rows by the whole recurrent weight at every step, so the weight's
// bytes are read once per thread and step; split by units, each thread reads its part, which
// also stays in its L2 where the whole weight did not. That pays where the weight's reads are
// a large part of the step (few rows per thread on a wide state), and more so where reading a
// weight past L2 is slow. Each point run both ways in one process (2 threads, T = 100,
// interleaved, medians of 7; units' speedup, inference / training):
//   - Intel Xeon (family 6 model 207, 2 MB L2): H = 256, B = 2-4: 1.1-1.38 / 1.1-1.27;
//     H = 512, B = 2-8: 1.16-1.75 / 1.13-1.61 (every cell); H = 256, B = 8: level; H = 64-128
//     and H = 256, B = 12-64: the rows ahead (training by units 0.70-0.98x), as the barrier and
//     the exchange of the state weigh more; a weight over L2 (LSTM H = 384 and 512, 2.4 and
//     4 MB; GRU H = 512, 3 MB) at B = 12-32: 1.04-1.38 / 1.01-1.25, at B = 64 0.97-1.05 /
//     0.95-1.09; under it (Elman H = 512, 1 MB; GRU H = 384, 1.8 MB) level or worse.
//   - AMD Zen 4 (family 25 model 17, 1 MB L2), H = 256-512: B = 2: 1.08-1.62 / 0.98-1.33;
//     B = 4: 1.08-1.40 / 1.01-1.18 but Elman H = 256 0.82 / 0.89; B = 6: 0.80-1.20 / 0.86-1.04,
//     in training ahead only past L2 (LSTM and GRU H >= 384); B = 8: 0.80-1.04 / 0.87-1.14,
//     mostly behind; B = 16-64 past L2: 0.95-1.04 / 0.89-1.00. Reading a weight from L3 costs
//     less there than on the Intel host (B = 1, H = 512, one thread: ~47 GB/s against ~28), so
//     splitting it pays only with 1-3 rows per thread.
// The limits: rows per thread up to which the units plan is taken from kUnitsOverRowsMinWidth,
// for any weight and for a weight larger than one core's L2. Intel's for Intel CPUs, Zen 4's
// elsewhere (other CPUs are unmeasured; the smaller limits risk less, as both hosts' data show
// the units plan losing by up to 30% where it is not needed). Zen 4's 2 rows keep Elman at
// H = 256, B = 4 on the units plan, which lost there (0.82 / 0.89) while LSTM and GRU gained
// 1.01-1.20 at the same size: one limit for all cells, as on the Intel host.
constexpr int64_t kUnitsOverRowsMinWidth = 256;
struct UnitsOverRowsLimits {
  int64_t rows_per_thread;          // any weight from the width above
  int64_t rows_per_thread_past_l2;  // a weight larger than L2
};
constexpr UnitsOverRowsLimits kUnitsOverRowsIntel{4, 16};
constexpr UnitsOverRowsLimits kUnitsOverRowsOther{2, 3};

inline UnitsOverRowsLimits units_over_rows_limits() {
  return cpu_is_intel() ? kUnitsOverRowsIntel : kUnitsOverRowsOther;
}

// How many slices the units of a call (B rows, H units, a recurrent weight of weight_bytes)
// split into: 1 (no unit split) unless there are several threads, the rows will not be split
// instead (rows_split) or splitting the units pays more (above), and a step's recurrent product
// (step_work = rows x K x N multiply-adds) is worth a barrier.
inline int64_t unit_slices(int64_t B, int64_t H, int64_t weight_bytes, int64_t step_work,
                           bool rows_split) {
  // No more threads than the CPUs this process may run on: two spinning threads on one CPU
  // only take turns.
  const int64_t threads = std::min<int64_t>(at::get_num_threads(), usable_cpus());
  const int64_t rows_per_thread = (B + threads - 1) / std::max<int64_t>(threads, 1);
  const UnitsOverRowsLimits limits = units_over_rows_limits();
  const bool units_pay_more =
      H >= kUnitsOverRowsMinWidth &&
      (rows_per_thread <= limits.rows_per_thread ||
       (weight_bytes > l2_cache_bytes() && rows_per_thread <= limits.rows_per_thread_past_l2));
  if (threads < 2 || (rows_split && !units_pay_more) || at::in_parallel_region() ||
      step_work < kUnitSplitWork)
    return 1;
  return std::max<int64_t>(1, std::min(threads, H / kUnitGroup));
}

// First unit of slice k of `slices` over H units: whole groups of kUnitGroup, the remainder to
// the last slice.
inline int64_t slice_start(int64_t k, int64_t slices, int64_t H) {
  if (k >= slices) return H;
  return (H / kUnitGroup) * k / slices * kUnitGroup;
}

// Runs body(slice, u0, u1, weight, barrier) once per thread of a team over `slices` slices of
// H units: the thread owns units [u0, u1), which start at slice `slice`, and stands for
// `weight` slices at the barrier. If body throws in one thread (an allocation failing), the
// barrier is abandoned so that the others finish, and at::parallel_for rethrows the error.
template <typename F>
inline void for_unit_slices(int64_t H, int64_t slices, F&& body) {
  SpinBarrier barrier(slices);
  at::parallel_for(0, slices, 1, [&](int64_t first, int64_t last) {
    try {
      body(first, slice_start(first, slices, H), slice_start(last, slices, H), last - first,
           barrier);
    } catch (...) {
      barrier.abandon();
      throw;
    }
  });
}

// Each slice's packed share of a weight, K x (gates x its units), packed by the thread that
// multiplies it (so the values land in that core's caches) into memory from the buffer pool
// (buffer_pool.h). With a fresh std::vector per call the kernels page-faulted their slices in
// again every call (LSTM, H = 512: ~2000 faults per training call, against none then for one
// packed matrix of the whole weight, which glibc reused in a steady loop; such matrices come
// from the pool too now, see PackedMatrix), and ran slower than a fork/join per step.
template <typename T>
struct SliceWeights {
  std::vector<PackedMatrix<T>> packed;
  at::Tensor memory;   // every slice's packed values, then the staging rows
  std::vector<int64_t> offsets;  // slice k's packed values at memory + offsets[k]
  T* staging = nullptr;  // gathered rows before packing (pack_rows): gates H x K, a slice at gates u0 K

  // gates: the gates of each unit's rows in the packed slice (pack_rows); 1 for pack_columns.
  SliceWeights(int64_t slices, int64_t H, int64_t K, int64_t gates)
      : packed(slices), offsets(slices + 1, 0) {
    for (int64_t k = 0; k < slices; ++k) {
      const int64_t n = gates * (slice_start(k + 1, slices, H) - slice_start(k, slices, H));
      offsets[k + 1] = offsets[k] + PackedMatrix<T>::packed_size(K, n);
    }
    const int64_t staging_size = gates > 1 ? gates * H * K : 0;  // pack_rows gathers them
    memory = pooled_empty({offsets[slices] + staging_size},
                          at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value));
    staging = memory.data_ptr<T>() + offsets[slices];
  }

  // Rows g H + u (g < gates, u in [u0, u1)) of a row-major (gates H, K) weight W, packed as the
  // right-hand side of x W_slice^T: K x gates (u1 - u0), gate after gate, laid out as the cell
  // reads them (lstm.cpp: cell_row with H = u1 - u0). Rows of different gates lie apart in W,
  // so they are first copied side by side into the staging rows.
  const PackedMatrix<T>& pack_rows(int64_t slice, const T* W, int64_t K, int64_t H, int64_t gates,
                                   int64_t u0, int64_t u1) {
    const int64_t n = u1 - u0;
    const T* rows = W + u0 * K;  // one gate: the rows are already side by side
    if (gates > 1) {
      T* gathered = staging + gates * u0 * K;
      for (int64_t g = 0; g < gates; ++g)
        std::memcpy(gathered + g * n * K, W + (g * H + u0) * K, n * K * sizeof(T));
      rows = gathered;
    }
    pack_slice(slice, rows, K, gates * n, 1, K);
    return packed[slice];
  }

  // Columns [u0, u1) of a row-major (K, H) weight (the backward's W_hh, K = gates H).
  const PackedMatrix<T>& pack_columns(int64_t slice, const T* W, int64_t K, int64_t H, int64_t u0,
                                      int64_t u1) {
    pack_slice(slice, W + u0, K, u1 - u0, H, 1);
    return packed[slice];
  }

 private:
  void pack_slice(int64_t slice, const T* src, int64_t K, int64_t N, int64_t stride_k,
                  int64_t stride_n) {
    // A thread handed several slices (a team smaller than asked for) packs them as one, larger
    // than slice `slice`'s reserved room: it gets memory of its own.
    const int64_t room = offsets[slice + 1] - offsets[slice];
    if (PackedMatrix<T>::packed_size(K, N) <= room)
      packed[slice].pack_into(memory.data_ptr<T>() + offsets[slice], src, K, N, stride_k, stride_n);
    else
      packed[slice].pack(src, K, N, stride_k, stride_n);
  }
};

// The values g H + u of a gates H vector (a bias), in the same order; empty for a null vector.
template <typename T>
inline std::vector<T> gather_units(const T* v, int64_t H, int64_t gates, int64_t u0, int64_t u1) {
  std::vector<T> out;
  if (v == nullptr) return out;
  for (int64_t g = 0; g < gates; ++g) out.insert(out.end(), v + g * H + u0, v + g * H + u1);
  return out;
}

// The forward of a cell under the plan by units. h (B, H): the state, updated in place; out
// (T, B, H): the outputs, padding rows zero. W (gates H, H) and bias (gates H, or null): W_hh
// and b_hh. make_cell(u0, u1) is called once in each thread and returns that thread's
// cell(t, b, t_next, pre, h_prev, h_next): for its units of row b at step t (t_next: the step
// after, or -1, for prefetching) it turns pre (h_{t-1} W^T + b at those units, gate after gate,
// gates (u1 - u0) values) and h_prev (the row's whole h_{t-1}) into h_next[u0:u1].
// Step s reads h from state[s % 2] and writes state[(s + 1) % 2]: with one buffer a thread
// writing its units of h_t would overwrite h_{t-1} while another thread still multiplies it.
template <typename T, typename MakeCell>
void forward_by_units(int64_t slices, const Steps& steps, int64_t H, int64_t gates, const T* W,
                      const T* bias, T* h, T* out, MakeCell&& make_cell) {
  const int64_t B = steps.B;
  std::vector<T> state(2 * B * H);
  std::memcpy(state.data(), h, B * H * sizeof(T));
  SliceWeights<T> w_slices(slices, H, H, gates);
  for_unit_slices(H, slices, [&](int64_t slice, int64_t u0, int64_t u1, int64_t weight,
                                 SpinBarrier& barrier) {
    const int64_t n = u1 - u0, N = gates * n;
    const PackedMatrix<T>& w = w_slices.pack_rows(slice, W, H, H, gates, u0, u1);
    const std::vector<T> bias_units = gather_units(bias, H, gates, u0, u1);
    std::vector<T> pre(B * N);
    auto cell = make_cell(u0, u1);
    for (int64_t s = 0; s < steps.T; ++s) {
      const int64_t t = steps.time(s), t_next = steps.time_after(s);
      const T* h_prev = state.data() + (s % 2) * B * H;
      T* h_next = state.data() + ((s + 1) % 2) * B * H;
      // The other threads' units of h_prev were just written in their cores' caches. Asked
      // for all at once; the product would otherwise miss on them one line at a time.
      prefetch(h_prev, B * H);
      gemm_assign(B, h_prev, H, w, pre.data(), N, 0, w.panels,
                  bias_units.empty() ? nullptr : bias_units.data(), panel_order_of_step(s));
      for (int64_t b = 0; b < B; ++b) {
        T* out_row = out + (t * B + b) * H + u0;
        T* next = h_next + b * H;
        if (!steps.valid(t, b)) {  // past its length: the row keeps its state, outputs zeros
          std::fill(out_row, out_row + n, T(0));
          std::memcpy(next + u0, h_prev + b * H + u0, n * sizeof(T));
          continue;
        }
        cell(t, b, t_next, pre.data() + b * N, h_prev + b * H, next);
        std::memcpy(out_row, next + u0, n * sizeof(T));
      }
      barrier.arrive_and_wait(weight);
    }
    const T* last = state.data() + (steps.T % 2) * B * H;
    for (int64_t b = 0; b < B; ++b) std::memcpy(h + b * H + u0, last + b * H + u0, n * sizeof(T));
  });
}

// The backward of a cell under the plan by units. grad_rows (T, B, K), rows ld apart (GradientRows
// in common.h): the gradient of the step's recurrent product h_{t-1} W^T, W (K, H) = W_hh with K =
// gates H; and dh (B, H) the gradient of the state, each only ever touched at a thread's own units.
// make_cell(u0, u1) is called once in each thread and returns its cell(t, b, t_next, dh_row,
// dh_prev): for its units of row b at step t it adds the output gradient to dh_row[u0:u1], writes
// the step's gradient rows at those units (grad_rows among them), and with `accumulate` (the GRU,
// whose h_{t-1} also reaches h_t directly) the direct part of the gradient of h_{t-1} to
// dh_prev[0:u1-u0]. After the step's barrier each thread adds dG_t W[:, u0:u1] from the whole row
// dG_t: each step's gradient has its own row of grad_rows, so the next step's writes never meet
// this step's reads.
template <typename T, typename MakeCell>
void backward_by_units(int64_t slices, const Steps& steps, int64_t H, int64_t K, const T* W,
                       T* grad_rows, int64_t ld, T* dh, bool accumulate, MakeCell&& make_cell) {
  const int64_t B = steps.B;
  SliceWeights<T> w_slices(slices, H, K, 1);
  for_unit_slices(H, slices, [&](int64_t slice, int64_t u0, int64_t u1, int64_t weight,
                                 SpinBarrier& barrier) {
    const int64_t n = u1 - u0;
    const PackedMatrix<T>& w = w_slices.pack_columns(slice, W, K, H, u0, u1);  // (B x K) -> B x n
    std::vector<T> dh_prev(B * n, T(0));
    auto cell = make_cell(u0, u1);
    for (int64_t s = steps.T - 1; s >= 0; --s) {
      const int64_t t = steps.time(s), t_next = steps.time_before(s);
      for (int64_t b = 0; b < B; ++b) {
        T* dprev = dh_prev.data() + b * n;
        if (steps.valid(t, b)) cell(t, b, t_next, dh + b * H, dprev);
        else if (accumulate) std::fill(dprev, dprev + n, T(0));
      }
      barrier.arrive_and_wait(weight);
      const T* rows = grad_rows + t * B * ld;
      prefetch(rows, B * ld);  // the other threads' units, all at once (as in forward_by_units)
      const PanelOrder order = panel_order_of_step(s);
      if (accumulate) gemm_accumulate(B, rows, ld, w, dh_prev.data(), n, 0, w.panels, order);
      else gemm_assign(B, rows, ld, w, dh_prev.data(), n, 0, w.panels, static_cast<const T*>(nullptr), order);
      for (int64_t b = 0; b < B; ++b)
        if (steps.valid(t, b)) std::memcpy(dh + b * H + u0, dh_prev.data() + b * n, n * sizeof(T));
    }
  });
}

}  // namespace rnnkit
