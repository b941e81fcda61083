// Fused Elman recurrence: h' = act(gates_x[t] + b_hh + h W_hh^T), act = tanh or relu.
// The outputs are all backward needs: tanh'(a) = 1 - h'^2 and relu'(a) = [h' > 0]. With bf16
// (CPU autocast) gates_x may be bfloat16, and backward returns grad_gates_x in bfloat16 (common.h).
#include <torch/library.h>

#include "common.h"
#include "dense.h"

namespace rnnkit {
namespace {

using at::Tensor;
using c10::optional;

// forward_impl's plan when the batch is too small to split by rows (unit_team.h, as in
// lstm.cpp): the thread of units [u0, u1) packs W_hh's rows of its units and computes them; a
// barrier per step publishes h_t. Not the bfloat16 path.
template <typename T>
void forward_units(int64_t slices, const Steps& steps, int64_t H, const T* W, const T* b_hh,
                   const GateRows<T>& gates_rows, bool relu, T* h, T* out) {
  const int64_t B = steps.B;
  std::vector<T> state(2 * B * H);  // h_{t-1} and h_t (see lstm.cpp, forward_units)
  std::memcpy(state.data(), h, B * H * sizeof(T));
  SliceWeights<T> w_slices(slices, H, H, 1, /*gathered=*/true);
  for_unit_slices(H, slices, [&](int64_t slice, int64_t u0, int64_t u1, int64_t weight,
                                 SpinBarrier& barrier) {
    const int64_t n = u1 - u0;
    const PackedMatrix<T>& w_hh = w_slices.pack_rows(slice, W, H, H, 1, u0, u1);
    const std::vector<T> bias = gather_units(b_hh, H, 1, u0, u1);
    for (int64_t s = 0; s < steps.T; ++s) {
      const int64_t t = steps.time(s), t_next = steps.time_after(s);
      const T* h_prev = state.data() + (s % 2) * B * H;
      T* h_next = state.data() + ((s + 1) % 2) * B * H;
      prefetch(h_prev, B * H);  // the other threads' units, all at once
      // h W_hh^T + b_hh at this thread's units, straight into its units of h_t
      gemm_assign(B, h_prev, H, w_hh, h_next + u0, H, 0, w_hh.panels,
                  bias.empty() ? nullptr : bias.data());
      for (int64_t b = 0; b < B; ++b) {
        const T* x = gates_rows.full + t * gates_rows.stride_t + b * gates_rows.stride_b + u0;
        if (t_next >= 0) prefetch(x + (t_next - t) * gates_rows.stride_t, n);
        T* out_row = out + (t * B + b) * H + u0;
        T* row = h_next + b * H + u0;
        if (!steps.valid(t, b)) {
          std::fill(out_row, out_row + n, T(0));
          std::memcpy(row, h_prev + b * H + u0, n * sizeof(T));
          continue;
        }
        RNNKIT_NO_ALIAS
        for (int64_t u = 0; u < n; ++u) row[u] += x[u];
        if (relu) {
          RNNKIT_NO_ALIAS
          for (int64_t u = 0; u < n; ++u) row[u] = row[u] > T(0) ? row[u] : T(0);
        } else {
          tanh_array(row, row, n);
        }
        std::memcpy(out_row, row, n * sizeof(T));
      }
      barrier.arrive_and_wait(weight);
    }
    const T* last = state.data() + (steps.T % 2) * B * H;
    for (int64_t b = 0; b < B; ++b) std::memcpy(h + b * H + u0, last + b * H + u0, n * sizeof(T));
  });
}

template <typename T>
std::tuple<Tensor, Tensor> forward_impl(const Tensor& gates_x, const Tensor& h0,
                                        const Tensor& weight_hh, const optional<Tensor>& bias_hh,
                                        const optional<Tensor>& lengths, bool reverse, bool relu,
                                        bool bf16) {
  const int64_t steps_n = gates_x.size(0), B = gates_x.size(1), H = gates_x.size(2);
  Tensor output = pooled_empty({steps_n, B, H}, h0.options());
  Tensor h_n = h0.contiguous().clone();
  if (steps_n == 0) return {output, h_n};
  const Tensor W = weight_hh.contiguous();
  Tensor bias = bias_hh.has_value() && bias_hh->defined() ? bias_hh->contiguous() : Tensor();
  const T* b_hh = bias.defined() ? bias.data_ptr<T>() : nullptr;
  const GateRows<T> gates_rows(gates_x);
  T* h = h_n.data_ptr<T>();
  T* out = output.data_ptr<T>();
  const Steps steps = make_steps(steps_n, B, reverse, lengths);
  const int64_t work_per_row = steps_n * H * (H + 1);

  const int64_t slices =
      bf16 || gates_rows.low ? 1 : unit_slices(H, B * H * H, rows_split(B, work_per_row));
  if (slices > 1) {
    forward_units<T>(slices, steps, H, W.data_ptr<T>(), b_hh, gates_rows, relu, h, out);
    return {output, h_n};
  }

  const RecurrentWeight<T> w_hh(W.data_ptr<T>(), H, H, 1, H, bf16);
  for_row_blocks(B, work_per_row, [&](int64_t b0, int64_t b1) {
    const int64_t M = b1 - b0;
    std::vector<T> pre(M * H), x_row(H);
    RecurrentProduct<T> recurrent(w_hh, M);
    for (int64_t s = 0; s < steps_n; ++s) {
      const int64_t t = steps.time(s);
      // h W_hh^T + b_hh written fresh, gates_x added below as its row is read (as in lstm.cpp).
      recurrent(M, h + b0 * H, H, pre.data(), H, /*overwrite=*/true, b_hh);
      const int64_t t_next = steps.time_after(s);
      for (int64_t b = b0; b < b1; ++b) {
        if (t_next >= 0) gates_rows.prefetch_row(t_next, b);
        T* out_row = out + (t * B + b) * H;
        if (!steps.valid(t, b)) {
          std::fill(out_row, out_row + H, T(0));
          continue;
        }
        T* row = pre.data() + (b - b0) * H;
        const T* x = gates_rows.row(t, b, x_row.data());
        RNNKIT_NO_ALIAS
        for (int64_t u = 0; u < H; ++u) row[u] += x[u];
        if (relu) {
          RNNKIT_NO_ALIAS
          for (int64_t u = 0; u < H; ++u) row[u] = row[u] > T(0) ? row[u] : T(0);
        } else {
          tanh_array(row, row, H);
        }
        std::memcpy(h + b * H, row, H * sizeof(T));
        std::memcpy(out_row, row, H * sizeof(T));
      }
    }
  });
  return {output, h_n};
}

// backward_impl's plan when the batch is too small to split by rows (unit_team.h, as in
// lstm.cpp): the thread of units [u0, u1) writes their gradients into the step's row of
// grad_pre, and after the step's barrier computes its units of dh_{t-1} = d_pre_t W_hh[:, u0:u1]
// from the whole row. Not the bfloat16 path.
template <typename T>
void backward_units(int64_t slices, const Steps& steps, int64_t H, const T* W, const T* go,
                    const T* out, bool relu, T* dh, T* grad_pre, BiasGradient<T>& bias_grad) {
  const int64_t B = steps.B;
  SliceWeights<T> w_slices(slices, H, H, 1, /*gathered=*/false);
  for_unit_slices(H, slices, [&](int64_t slice, int64_t u0, int64_t u1, int64_t weight,
                                 SpinBarrier& barrier) {
    const int64_t n = u1 - u0;
    // d_pre (B x H) -> the thread's units of dh (B x n)
    const PackedMatrix<T>& w_hh = w_slices.pack_columns(slice, W, H, H, u0, u1);
    std::vector<T> dh_prev(B * n);
    for (int64_t s = steps.T - 1; s >= 0; --s) {
      const int64_t t = steps.time(s), t_next = steps.time_before(s);
      for (int64_t b = 0; b < B; ++b) {
        if (t_next >= 0) {
          prefetch(out + (t_next * B + b) * H + u0, n);
          prefetch(go + (t_next * B + b) * H + u0, n);
        }
        if (!steps.valid(t, b)) continue;
        const T* y = out + (t * B + b) * H;
        const T* g_out = go + (t * B + b) * H;
        T* d = grad_pre + (t * B + b) * H;
        const T* dhb = dh + b * H;
        if (relu) {
          RNNKIT_NO_ALIAS
          for (int64_t u = u0; u < u1; ++u) d[u] = y[u] > T(0) ? dhb[u] + g_out[u] : T(0);
        } else {
          RNNKIT_NO_ALIAS
          for (int64_t u = u0; u < u1; ++u) d[u] = (dhb[u] + g_out[u]) * (T(1) - y[u] * y[u]);
        }
        bias_grad.add_units(b, u0, d + u0, n);
      }
      barrier.arrive_and_wait(weight);
      prefetch(grad_pre + t * B * H, B * H);  // the other threads' units, all at once
      gemm_assign(B, grad_pre + t * B * H, H, w_hh, dh_prev.data(), n, 0, w_hh.panels,
                  static_cast<const T*>(nullptr));
      for (int64_t b = 0; b < B; ++b)
        if (steps.valid(t, b)) std::memcpy(dh + b * H + u0, dh_prev.data() + b * n, n * sizeof(T));
    }
  });
}

template <typename T>
std::tuple<Tensor, Tensor, Tensor, Tensor> backward_impl(
    const Tensor& grad_output_, const Tensor& grad_h_n, const Tensor& output_, const Tensor& h0_,
    const Tensor& weight_hh, const optional<Tensor>& lengths, bool reverse, bool relu, bool bf16) {
  const int64_t steps_n = output_.size(0), B = output_.size(1), H = output_.size(2);
  const auto opts = output_.options();
  const Steps steps = make_steps(steps_n, B, reverse, lengths);
  const Tensor grad_output = pooled_contiguous(grad_output_), output = pooled_contiguous(output_);
  const Tensor h0 = h0_.contiguous();
  GradientRows<T> grad_pre(steps, H, opts, bf16);
  Tensor dh = grad_h_n.contiguous().clone();
  const Tensor W = weight_hh.contiguous();
  const int64_t work_per_row = steps_n * H * (H + 1);
  const int64_t slices = bf16 ? 1 : unit_slices(H, B * H * H, rows_split(B, work_per_row));
  // packed here for the plan by rows; the plan by units packs each thread's columns itself
  const RecurrentWeight<T> w_hh(slices == 1 ? W.data_ptr<T>() : nullptr, H, H, H, 1,
                                bf16);  // d_pre (B x H) -> B x H
  const T* go = grad_output.data_ptr<T>();
  const T* out = output.data_ptr<T>();
  const T* h_init = h0.data_ptr<T>();
  T* dh_p = dh.data_ptr<T>();

  BiasGradient<T> bias_grad(B, H);
  if (slices > 1)
    backward_units<T>(slices, steps, H, W.data_ptr<T>(), go, out, relu, dh_p, grad_pre.full,
                      bias_grad);
  if (slices == 1) for_row_blocks(B, work_per_row, [&](int64_t b0, int64_t b1) {
    const int64_t M = b1 - b0;
    std::vector<T> dh_prev(M * H), dpre_rows(bf16 ? M * H : 0);  // scratch of the bfloat16 side
    RecurrentProduct<T> recurrent(w_hh, M);
    for (int64_t s = steps_n - 1; s >= 0; --s) {
      const int64_t t = steps.time(s);
      T* dpre = grad_pre.block(t, b0, dpre_rows.data());  // rows b0..b1 of step t
      const int64_t t_next = steps.time_before(s);
      for (int64_t b = b0; b < b1; ++b) {
        if (t_next >= 0) {
          prefetch(out + (t_next * B + b) * H, H);
          prefetch(go + (t_next * B + b) * H, H);
        }
        if (!steps.valid(t, b)) continue;
        const T* y = out + (t * B + b) * H;
        const T* g_out = go + (t * B + b) * H;
        T* d = dpre + (b - b0) * H;
        const T* dhb = dh_p + b * H;
        if (relu) {
          RNNKIT_NO_ALIAS
          for (int64_t u = 0; u < H; ++u) d[u] = y[u] > T(0) ? dhb[u] + g_out[u] : T(0);
        } else {
          RNNKIT_NO_ALIAS
          for (int64_t u = 0; u < H; ++u) d[u] = (dhb[u] + g_out[u]) * (T(1) - y[u] * y[u]);
        }
        bias_grad.add(b, d);
        grad_pre.store(t, b, d);
      }
      recurrent(M, dpre, H, dh_prev.data(), H, /*overwrite=*/true);
      for (int64_t b = b0; b < b1; ++b)
        if (steps.valid(t, b))
          std::memcpy(dh_p + b * H, dh_prev.data() + (b - b0) * H, H * sizeof(T));
    }
  });
  const Tensor h_prev = gather_previous<T>(steps, out, h_init, H, opts, bf16);
  Tensor grad_weight_hh = weight_gradient(grad_pre.tensor.view({steps_n * B, H}).t(),
                                          h_prev.view({steps_n * B, H}), bf16);
  return {grad_pre.tensor, dh, grad_weight_hh, bias_grad.total(opts)};
}

std::tuple<Tensor, Tensor> elman_forward(const Tensor& gates_x, const Tensor& h0,
                                         const Tensor& weight_hh, const optional<Tensor>& bias_hh,
                                         const optional<Tensor>& lengths, bool reverse, bool relu,
                                         bool bf16) {
  check_cpu_float(h0, "h0");
  check_gates_x(gates_x, h0, bf16);
  check_shapes(gates_x, h0, weight_hh, 1, h0.size(1));
  TORCH_CHECK(gates_x.dim() == 3 && gates_x.stride(2) == 1, "rnnkit fused: gates_x must be (T, B, H) with contiguous rows");
  return AT_DISPATCH_FLOATING_TYPES(h0.scalar_type(), "rnnkit_elman_forward", [&] {
    return forward_impl<scalar_t>(gates_x, h0, weight_hh, bias_hh, lengths, reverse, relu, bf16);
  });
}

std::tuple<Tensor, Tensor, Tensor, Tensor> elman_backward(
    const Tensor& grad_output, const Tensor& grad_h_n, const Tensor& output, const Tensor& h0,
    const Tensor& weight_hh, const optional<Tensor>& lengths, bool reverse, bool relu, bool bf16) {
  check_cpu_float(output, "output");
  return AT_DISPATCH_FLOATING_TYPES(output.scalar_type(), "rnnkit_elman_backward", [&] {
    return backward_impl<scalar_t>(grad_output, grad_h_n, output, h0, weight_hh, lengths, reverse, relu,
                                   bf16);
  });
}

}  // namespace
}  // namespace rnnkit

TORCH_LIBRARY_FRAGMENT(rnnkit, m) {
  m.def("elman_forward(Tensor gates_x, Tensor h0, Tensor weight_hh, Tensor? bias_hh, "
        "Tensor? lengths, bool reverse, bool relu, bool bf16=False) -> (Tensor output, Tensor h_n)");
  m.def("elman_backward(Tensor grad_output, Tensor grad_h_n, Tensor output, Tensor h0, "
        "Tensor weight_hh, Tensor? lengths, bool reverse, bool relu, bool bf16=False) -> "
        "(Tensor grad_gates_x, "
        "Tensor grad_h0, Tensor grad_weight_hh, Tensor grad_bias_hh)");
}

TORCH_LIBRARY_IMPL(rnnkit, CPU, m) {
  m.impl("elman_forward", &rnnkit::elman_forward);
  m.impl("elman_backward", &rnnkit::elman_backward);
}
