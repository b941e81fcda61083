// Fused Elman recurrence: h' = act(gates_x[t] + b_hh + h W_hh^T), act = tanh or relu.
// The outputs are all backward needs: tanh'(a) = 1 - h'^2 and relu'(a) = [h' > 0]. With bf16
// (CPU autocast) gates_x may be bfloat16, and backward returns grad_gates_x in bfloat16 (common.h).
#include <torch/library.h>

#include "common.h"
#include "dense.h"
#include "unit_team.h"

namespace rnnkit {
namespace {

using at::Tensor;
using c10::optional;

// h' = act(a) in place over n values of a = h W_hh^T + b_hh + gates_x[t] (x: the row of gates_x).
template <typename T>
inline void activate(T* a, const T* x, int64_t n, bool relu) {
  RNNKIT_NO_ALIAS
  for (int64_t u = 0; u < n; ++u) a[u] += x[u];
  if (relu) {
    RNNKIT_NO_ALIAS
    for (int64_t u = 0; u < n; ++u) a[u] = a[u] < T(0) ? T(0) : a[u];  // keeps NaN, as torch
  } else {
    tanh_array(a, a, n);
  }
}

// The gradient of the pre-activation at units [u0, u1) of one row, from the step's output y
// (tanh'(a) = 1 - y^2, relu'(a) = [y > 0], taken as 1 where y is NaN), the output gradient
// g_out and dh (full rows).
template <typename T>
inline void pre_activation_gradient(const T* y, const T* g_out, const T* dh, T* d, int64_t u0,
                                    int64_t u1, bool relu) {
  if (relu) {
    RNNKIT_NO_ALIAS
    // y <= 0, not !(y > 0): a NaN output passes its gradient on, as torch's threshold_backward
    for (int64_t u = u0; u < u1; ++u) d[u] = y[u] <= T(0) ? T(0) : dh[u] + g_out[u];
  } else {
    RNNKIT_NO_ALIAS
    for (int64_t u = u0; u < u1; ++u) d[u] = (dh[u] + g_out[u]) * (T(1) - y[u] * y[u]);
  }
}

// forward_impl's plan when the batch is too small to split by rows (unit_team.h): each thread
// runs the activation for its units. Not the bfloat16 path.
template <typename T>
void forward_units(int64_t slices, const Steps& steps, int64_t H, const T* W, const T* b_hh,
                   const GateRows<T>& gates_rows, bool relu, T* h, T* out) {
  forward_by_units(slices, steps, H, 1, W, b_hh, h, out, [&](int64_t u0, int64_t u1) {
    return [&, u0, u1](int64_t t, int64_t b, int64_t t_next, T* pre, const T*, T* h_next) {
      const int64_t n = u1 - u0;
      const T* x = gates_rows.full + t * gates_rows.stride_t + b * gates_rows.stride_b + u0;
      if (t_next >= 0) prefetch(x + (t_next - t) * gates_rows.stride_t, n);
      activate(pre, x, n, relu);
      std::memcpy(h_next + u0, pre, n * sizeof(T));
    };
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

  const int64_t weight_bytes = weight_hh.numel() * weight_hh.element_size();
  const int64_t slices =
      bf16 || gates_rows.low ? 1 : unit_slices(B, H, weight_bytes, B * H * H,
                                               rows_split(B, work_per_row));
  if (slices > 1) {
    forward_units<T>(slices, steps, H, W.data_ptr<T>(), b_hh, gates_rows, relu, h, out);
    return {output, h_n};
  }

  const BlockWeight<T> hh(WeightSource<T>(W.data_ptr<T>(), H, H, 1, H, bf16));  // h -> B x H
  for_row_blocks(B, work_per_row, [&](int64_t b0, int64_t b1) {
    const int64_t M = b1 - b0;
    std::vector<T> pre(M * H), x_row(H);
    std::optional<RecurrentWeight<T>> own_hh;
    RecurrentProduct<T> recurrent(hh.in_block(own_hh), M);
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
        activate(row, gates_rows.row(t, b, x_row.data()), H, relu);
        std::memcpy(h + b * H, row, H * sizeof(T));
        std::memcpy(out_row, row, H * sizeof(T));
      }
    }
  });
  return {output, h_n};
}

// backward_impl's plan when the batch is too small to split by rows (unit_team.h): each thread
// writes its units' gradients into the step's row of grad_pre and computes its units of
// dh_{t-1} = d_pre_t W_hh[:, u0:u1]. Not the bfloat16 path.
template <typename T>
void backward_units(int64_t slices, const Steps& steps, int64_t H, const T* W, const T* go,
                    const T* out, bool relu, T* dh, const GradientRows<T>& grad_pre,
                    BiasGradient<T>& bias_grad) {
  const int64_t B = steps.B;
  backward_by_units(slices, steps, H, H, W, grad_pre.full, grad_pre.ld, dh, /*accumulate=*/false,
                    [&](int64_t u0, int64_t u1) {
    return [&, u0, u1](int64_t t, int64_t b, int64_t t_next, T* dh_row, T*) {
      const int64_t n = u1 - u0;
      if (t_next >= 0) {
        prefetch(out + (t_next * B + b) * H + u0, n);
        prefetch(go + (t_next * B + b) * H + u0, n);
      }
      T* d = grad_pre.row(t, b);
      pre_activation_gradient(out + (t * B + b) * H, go + (t * B + b) * H, dh_row, d, u0, u1, relu);
      bias_grad.add_units(b, u0, d + u0, n);
    };
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
  const int64_t weight_bytes = weight_hh.numel() * weight_hh.element_size();
  const int64_t slices = bf16 ? 1 : unit_slices(B, H, weight_bytes, B * H * H,
                                                rows_split(B, work_per_row));
  // for the plan by rows; the plan by units packs each thread's columns itself
  const BlockWeight<T> hh(WeightSource<T>(slices == 1 ? W.data_ptr<T>() : nullptr, H, H, H, 1,
                                          bf16));  // d_pre (B x H) -> B x H
  const T* go = grad_output.data_ptr<T>();
  const T* out = output.data_ptr<T>();
  const T* h_init = h0.data_ptr<T>();
  T* dh_p = dh.data_ptr<T>();

  BiasGradient<T> bias_grad(B, H);
  if (slices > 1)
    backward_units<T>(slices, steps, H, W.data_ptr<T>(), go, out, relu, dh_p, grad_pre, bias_grad);
  if (slices == 1) for_row_blocks(B, work_per_row, [&](int64_t b0, int64_t b1) {
    const int64_t M = b1 - b0;
    std::vector<T> dh_prev(M * H), dpre_rows(bf16 ? M * H : 0);  // scratch of the bfloat16 side
    const int64_t ld_dpre = grad_pre.block_stride();
    std::optional<RecurrentWeight<T>> own_hh;
    RecurrentProduct<T> recurrent(hh.in_block(own_hh), M);
    for (int64_t s = steps_n - 1; s >= 0; --s) {
      const int64_t t = steps.time(s);
      T* dpre = grad_pre.block(t, b0, dpre_rows.data());  // rows b0..b1 of step t, ld_dpre apart
      const int64_t t_next = steps.time_before(s);
      for (int64_t b = b0; b < b1; ++b) {
        if (t_next >= 0) {
          prefetch(out + (t_next * B + b) * H, H);
          prefetch(go + (t_next * B + b) * H, H);
        }
        if (!steps.valid(t, b)) continue;
        const T* y = out + (t * B + b) * H;
        const T* g_out = go + (t * B + b) * H;
        T* d = dpre + (b - b0) * ld_dpre;
        pre_activation_gradient(y, g_out, dh_p + b * H, d, 0, H, relu);
        bias_grad.add(b, d);
        grad_pre.store(t, b, d);
      }
      recurrent(M, dpre, ld_dpre, dh_prev.data(), H, /*overwrite=*/true);
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
  check_bias(bias_hh, h0, h0.size(1), "bias_hh");
  TORCH_CHECK(gates_x.dim() == 3 && gates_x.stride(2) == 1, "rnnkit fused: gates_x must be (T, B, H) with contiguous rows");
  return AT_DISPATCH_FLOATING_TYPES(h0.scalar_type(), "rnnkit_elman_forward", [&] {
    return forward_impl<scalar_t>(gates_x, h0, weight_hh, bias_hh, lengths, reverse, relu, bf16);
  });
}

std::tuple<Tensor, Tensor, Tensor, Tensor> elman_backward(
    const Tensor& grad_output, const Tensor& grad_h_n, const Tensor& output, const Tensor& h0,
    const Tensor& weight_hh, const optional<Tensor>& lengths, bool reverse, bool relu, bool bf16) {
  check_cpu_float(output, "output");
  TORCH_CHECK(output.dim() == 3, "rnnkit fused: output must be (T, B, H)");
  const int64_t B = output.size(1), H = output.size(2);
  check_shape(grad_output, output.sizes(), "grad_output");
  check_shape(grad_h_n, {B, H}, "grad_h_n");
  check_shape(h0, {B, H}, "h0");
  check_shape(weight_hh, {H, H}, "weight_hh");
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
