// Fused GRU recurrence (reset applied after the recurrent matmul, as torch and cuDNN).
//
// Per step, with X = gates_x[t] (B x 3H, order r, z, n) and R = h W_hh^T + b_hh (B x 3H):
//   r = sigmoid(X_r + R_r)   z = sigmoid(X_z + R_z)   n = tanh(X_n + r R_n)
//   h' = (1 - z) n + z h
// Forward saves r, z, n and R_n per step, (T, B, 4H), for backward. With bf16 (CPU autocast)
// gates_x may be bfloat16, and backward returns grad_gates_x in bfloat16 (common.h).
#include <torch/library.h>

#include "common.h"
#include "dense.h"

namespace rnnkit {
namespace {

using at::Tensor;
using c10::optional;

template <typename T>
std::tuple<Tensor, Tensor, Tensor> forward_impl(const Tensor& gates_x, const Tensor& h0,
                                                const Tensor& weight_hh,
                                                const optional<Tensor>& bias_hh,
                                                const optional<Tensor>& lengths, bool reverse,
                                                bool training, bool bf16) {
  const int64_t steps_n = gates_x.size(0), B = gates_x.size(1), G = gates_x.size(2), H = G / 3;
  const auto opts = h0.options();
  Tensor output = pooled_empty({steps_n, B, H}, opts);
  Tensor h_n = h0.contiguous().clone();
  // Rows of padding steps are never written; zero them so the op's outputs are deterministic.
  const bool padded = lengths.has_value() && lengths->defined();
  Tensor saved = !training ? at::empty({0}, opts)
                 : padded  ? pooled_zeros({steps_n, B, 4 * H}, opts)
                           : pooled_empty({steps_n, B, 4 * H}, opts);
  if (steps_n == 0) return {output, h_n, saved};

  const Tensor W = weight_hh.contiguous();
  const RecurrentWeight<T> w_hh(W.data_ptr<T>(), H, G, 1, H, bf16);  // h (B x H) -> B x 3H
  Tensor bias = bias_hh.has_value() && bias_hh->defined() ? bias_hh->contiguous() : Tensor();
  const T* b_hh = bias.defined() ? bias.data_ptr<T>() : nullptr;
  const GateRows<T> gates_rows(gates_x);
  T* h = h_n.data_ptr<T>();
  T* out = output.data_ptr<T>();
  const Steps steps = make_steps(steps_n, B, reverse, lengths);

  for_row_blocks(B, steps_n * G * (H + 1), [&](int64_t b0, int64_t b1) {
    const int64_t M = b1 - b0;
    std::vector<T> rec(M * G), act(3 * H), x_row(G);
    RecurrentProduct<T> recurrent(w_hh, M);
    for (int64_t s = 0; s < steps_n; ++s) {
      const int64_t t = steps.time(s);
      recurrent(M, h + b0 * H, H, rec.data(), G, /*overwrite=*/true, b_hh);
      const int64_t t_next = steps.time_after(s);
      for (int64_t b = b0; b < b1; ++b) {
        if (t_next >= 0) gates_rows.prefetch_row(t_next, b);
        T* out_row = out + (t * B + b) * H;
        if (!steps.valid(t, b)) {
          std::fill(out_row, out_row + H, T(0));
          continue;
        }
        const T* x = gates_rows.row(t, b, x_row.data());
        const T* r_h = rec.data() + (b - b0) * G;
        T* r = act.data();
        T* z = r + H;
        T* n = z + H;
        for (int64_t j = 0; j < 2 * H; ++j) r[j] = x[j] + r_h[j];  // r and z pre-activations
        sigmoid_array(r, r, 2 * H);
        RNNKIT_NO_ALIAS
        for (int64_t u = 0; u < H; ++u) n[u] = x[2 * H + u] + r[u] * r_h[2 * H + u];
        tanh_array(n, n, H);
        T* hb = h + b * H;
        RNNKIT_NO_ALIAS
        for (int64_t u = 0; u < H; ++u) hb[u] = n[u] + z[u] * (hb[u] - n[u]);
        std::memcpy(out_row, hb, H * sizeof(T));
        if (training) {
          T* keep = saved.data_ptr<T>() + (t * B + b) * 4 * H;
          std::memcpy(keep, act.data(), 3 * H * sizeof(T));
          std::memcpy(keep + 3 * H, r_h + 2 * H, H * sizeof(T));
        }
      }
    }
  });
  return {output, h_n, saved};
}

template <typename T>
std::tuple<Tensor, Tensor, Tensor, Tensor> backward_impl(
    const Tensor& grad_output_, const Tensor& grad_h_n, const Tensor& output, const Tensor& saved,
    const Tensor& h0_, const Tensor& weight_hh, const optional<Tensor>& lengths, bool reverse,
    bool bf16) {
  const int64_t steps_n = saved.size(0), B = saved.size(1), H = saved.size(2) / 4, G = 3 * H;
  const auto opts = saved.options();
  const Steps steps = make_steps(steps_n, B, reverse, lengths);
  const Tensor grad_output = pooled_contiguous(grad_output_), h0 = h0_.contiguous();
  const Tensor out_c = pooled_contiguous(output);
  GradientRows<T> grad_gates_x(steps, G, opts, bf16);
  GradientRows<T> grad_rec(steps, G, opts, bf16);  // gradient of h W_hh^T + b_hh
  Tensor dh = grad_h_n.contiguous().clone();

  const Tensor W = weight_hh.contiguous();
  const RecurrentWeight<T> w_hh(W.data_ptr<T>(), G, H, H, 1, bf16);  // dR (B x 3H) -> B x H
  const T* go = grad_output.data_ptr<T>();
  const T* keep_all = saved.data_ptr<T>();
  const T* out = out_c.data_ptr<T>();
  const T* h_init = h0.data_ptr<T>();
  T* dh_p = dh.data_ptr<T>();

  BiasGradient<T> bias_grad(B, G);
  for_row_blocks(B, steps_n * G * (H + 1), [&](int64_t b0, int64_t b1) {
    const int64_t M = b1 - b0;
    std::vector<T> dh_prev(M * H);
    // scratch rows of the bfloat16 side (GradientRows): the step's dR block and one dX row
    std::vector<T> dR_rows(bf16 ? M * G : 0), dX_row(bf16 ? G : 0);
    RecurrentProduct<T> recurrent(w_hh, M);
    for (int64_t s = steps_n - 1; s >= 0; --s) {
      const int64_t t = steps.time(s);
      T* dR = grad_rec.block(t, b0, dR_rows.data());  // rows b0..b1 of step t
      const int64_t t_next = steps.time_before(s);
      for (int64_t b = b0; b < b1; ++b) {
        if (t_next >= 0) {
          prefetch(keep_all + (t_next * B + b) * 4 * H, 4 * H);
          prefetch(go + (t_next * B + b) * H, H);
        }
        T* dprev = dh_prev.data() + (b - b0) * H;
        if (!steps.valid(t, b)) {
          std::fill(dprev, dprev + H, T(0));
          continue;
        }
        const T* keep = keep_all + (t * B + b) * 4 * H;
        const T *r = keep, *z = keep + H, *n = keep + 2 * H, *rn = keep + 3 * H;
        const T* h_prev = previous_row(steps, t, b, out, h_init, H);
        const T* g_out = go + (t * B + b) * H;
        T* dX = bf16 ? dX_row.data() : grad_gates_x.block(t, b, nullptr);
        T* dRb = dR + (b - b0) * G;
        T* dhb = dh_p + b * H;
        RNNKIT_NO_ALIAS
        for (int64_t u = 0; u < H; ++u) {
          const T d_h = dhb[u] + g_out[u];
          const T d_n = d_h * (T(1) - z[u]) * (T(1) - n[u] * n[u]);
          const T d_z = d_h * (h_prev[u] - n[u]) * z[u] * (T(1) - z[u]);
          const T d_r = d_n * rn[u] * r[u] * (T(1) - r[u]);
          dX[u] = d_r;
          dX[H + u] = d_z;
          dX[2 * H + u] = d_n;
          dRb[u] = d_r;
          dRb[H + u] = d_z;
          dRb[2 * H + u] = d_n * r[u];
          dprev[u] = d_h * z[u];  // the direct path z * h; the matmul path is added below
        }
        bias_grad.add(b, dRb);
        grad_gates_x.store(t, b, dX);
        grad_rec.store(t, b, dRb);
      }
      recurrent(M, dR, G, dh_prev.data(), H);
      for (int64_t b = b0; b < b1; ++b)
        if (steps.valid(t, b))
          std::memcpy(dh_p + b * H, dh_prev.data() + (b - b0) * H, H * sizeof(T));
    }
  });

  const Tensor h_prev = gather_previous<T>(steps, out, h_init, H, opts, bf16);
  Tensor grad_weight_hh = weight_gradient(grad_rec.tensor.view({steps_n * B, G}).t(),
                                          h_prev.view({steps_n * B, H}), bf16);
  return {grad_gates_x.tensor, dh, grad_weight_hh, bias_grad.total(opts)};
}

std::tuple<Tensor, Tensor, Tensor> gru_forward(const Tensor& gates_x, const Tensor& h0,
                                               const Tensor& weight_hh,
                                               const optional<Tensor>& bias_hh,
                                               const optional<Tensor>& lengths, bool reverse,
                                               bool training, bool bf16) {
  check_cpu_float(h0, "h0");
  check_gates_x(gates_x, h0, bf16);
  check_shapes(gates_x, h0, weight_hh, 3, h0.size(1));
  TORCH_CHECK(gates_x.dim() == 3 && gates_x.stride(2) == 1, "rnnkit fused: gates_x must be (T, B, 3H) with contiguous rows");
  return AT_DISPATCH_FLOATING_TYPES(h0.scalar_type(), "rnnkit_gru_forward", [&] {
    return forward_impl<scalar_t>(gates_x, h0, weight_hh, bias_hh, lengths, reverse, training, bf16);
  });
}

std::tuple<Tensor, Tensor, Tensor, Tensor> gru_backward(
    const Tensor& grad_output, const Tensor& grad_h_n, const Tensor& output, const Tensor& saved,
    const Tensor& h0, const Tensor& weight_hh, const optional<Tensor>& lengths, bool reverse,
    bool bf16) {
  check_cpu_float(saved, "saved");
  return AT_DISPATCH_FLOATING_TYPES(saved.scalar_type(), "rnnkit_gru_backward", [&] {
    return backward_impl<scalar_t>(grad_output, grad_h_n, output, saved, h0, weight_hh, lengths, reverse,
                                   bf16);
  });
}

}  // namespace
}  // namespace rnnkit

TORCH_LIBRARY_FRAGMENT(rnnkit, m) {
  m.def("gru_forward(Tensor gates_x, Tensor h0, Tensor weight_hh, Tensor? bias_hh, "
        "Tensor? lengths, bool reverse, bool training, bool bf16=False) -> (Tensor output, Tensor h_n, "
        "Tensor saved)");
  m.def("gru_backward(Tensor grad_output, Tensor grad_h_n, Tensor output, Tensor saved, Tensor h0, "
        "Tensor weight_hh, Tensor? lengths, bool reverse, bool bf16=False) -> (Tensor grad_gates_x, "
        "Tensor grad_h0, "
        "Tensor grad_weight_hh, Tensor grad_bias_hh)");
}

TORCH_LIBRARY_IMPL(rnnkit, CPU, m) {
  m.impl("gru_forward", &rnnkit::gru_forward);
  m.impl("gru_backward", &rnnkit::gru_backward);
}
