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
#include "unit_team.h"

namespace rnnkit {
namespace {

using at::Tensor;
using c10::optional;

// The cell for units [u0, u1) of one row: x the row of gates_x (r | z | n, 3H), rec the row of
// h W_hh^T + b_hh at those units only (r | z | n, 3n with n = u1 - u0), h_prev / h_next the
// states (H), act a scratch of 3n; keep (training, else null) receives r, z, n and R_n at the
// units of a (4H) row of the saved buffer.
template <typename T>
inline void cell_units(const T* x, const T* rec, const T* h_prev, T* h_next, T* act, T* keep,
                       int64_t H, int64_t u0, int64_t u1) {
  const int64_t n_units = u1 - u0;
  T* r = act;
  T* z = r + n_units;
  T* n = z + n_units;
  for (int64_t k = 0; k < 2; ++k) {  // r and z pre-activations
    RNNKIT_NO_ALIAS
    for (int64_t u = 0; u < n_units; ++u) r[k * n_units + u] = x[k * H + u0 + u] + rec[k * n_units + u];
  }
  sigmoid_array(r, r, 2 * n_units);
  RNNKIT_NO_ALIAS
  for (int64_t u = 0; u < n_units; ++u) n[u] = x[2 * H + u0 + u] + r[u] * rec[2 * n_units + u];
  tanh_array(n, n, n_units);
  RNNKIT_NO_ALIAS
  for (int64_t u = 0; u < n_units; ++u) h_next[u0 + u] = n[u] + z[u] * (h_prev[u0 + u] - n[u]);
  if (keep) {
    for (int64_t k = 0; k < 3; ++k)
      std::memcpy(keep + k * H + u0, act + k * n_units, n_units * sizeof(T));
    std::memcpy(keep + 3 * H + u0, rec + 2 * n_units, n_units * sizeof(T));
  }
}

// forward_impl's plan when the batch is too small to split by rows (unit_team.h): each thread
// runs the cell for its units. Not the bfloat16 path. saved: null without training.
template <typename T>
void forward_units(int64_t slices, const Steps& steps, int64_t H, const T* W, const T* b_hh,
                   const GateRows<T>& gates_rows, T* h, T* out, T* saved) {
  const int64_t B = steps.B;
  forward_by_units(slices, steps, H, 3, W, b_hh, h, out, [&](int64_t u0, int64_t u1) {
    return [&, u0, u1, act = std::vector<T>(3 * (u1 - u0))](
               int64_t t, int64_t b, int64_t t_next, T* rec, const T* h_prev, T* h_next) mutable {
      if (t_next >= 0) gates_rows.prefetch_row(t_next, b);
      cell_units(gates_rows.full + t * gates_rows.stride_t + b * gates_rows.stride_b, rec, h_prev,
                 h_next, act.data(), saved ? saved + (t * B + b) * 4 * H : nullptr, H, u0, u1);
    };
  });
}

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
  Tensor bias = bias_hh.has_value() && bias_hh->defined() ? bias_hh->contiguous() : Tensor();
  const T* b_hh = bias.defined() ? bias.data_ptr<T>() : nullptr;
  const GateRows<T> gates_rows(gates_x);
  T* h = h_n.data_ptr<T>();
  T* out = output.data_ptr<T>();
  const Steps steps = make_steps(steps_n, B, reverse, lengths);
  const int64_t work_per_row = steps_n * G * (H + 1);

  const int64_t weight_bytes = weight_hh.numel() * weight_hh.element_size();
  const int64_t slices =
      bf16 || gates_rows.low ? 1 : unit_slices(B, H, weight_bytes, B * H * G,
                                               rows_split(B, work_per_row));
  if (slices > 1) {
    forward_units<T>(slices, steps, H, W.data_ptr<T>(), b_hh, gates_rows, h, out,
                     training ? saved.data_ptr<T>() : nullptr);
    return {output, h_n, saved};
  }

  const BlockWeight<T> hh(WeightSource<T>(W.data_ptr<T>(), H, G, 1, H, bf16));  // h -> B x 3H
  for_row_blocks(B, work_per_row, [&](int64_t b0, int64_t b1) {
    const int64_t M = b1 - b0;
    std::optional<RecurrentWeight<T>> own_hh;
    const RecurrentWeight<T>& w_hh = hh.in_block(own_hh);
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

// The cell's backward for units [u0, u1) of one row: from what forward kept (r, z, n, R_n; 4H),
// the previous state h_prev, the output gradient g_out and dh, the gradient of the state the
// step wrote, it writes the gradients of gates_x (dX) and of h W_hh^T + b_hh (dR) at those
// units (3H each, r | z | n), and the direct part of the gradient of h_prev to dprev[0:u1-u0]
// (the part through W_hh is added by the caller's product):
//   d_h = dh + g_out    d_n = d_h (1 - z) (1 - n^2)    d_z = d_h (h_prev - n) z (1 - z)
//   d_r = d_n R_n r (1 - r)    dX = (d_r, d_z, d_n)    dR = (d_r, d_z, d_n r)    dprev = d_h z
template <typename T>
inline void cell_gradients(const T* keep, const T* h_prev, const T* g_out, const T* dh, T* dX,
                           T* dR, T* dprev, int64_t H, int64_t u0, int64_t u1) {
  const T *r = keep, *z = keep + H, *n = keep + 2 * H, *rn = keep + 3 * H;
  RNNKIT_NO_ALIAS
  for (int64_t u = u0; u < u1; ++u) {
    const T d_h = dh[u] + g_out[u];
    const T d_n = d_h * (T(1) - z[u]) * (T(1) - n[u] * n[u]);
    const T d_z = d_h * (h_prev[u] - n[u]) * z[u] * (T(1) - z[u]);
    const T d_r = d_n * rn[u] * r[u] * (T(1) - r[u]);
    dX[u] = d_r;
    dX[H + u] = d_z;
    dX[2 * H + u] = d_n;
    dR[u] = d_r;
    dR[H + u] = d_z;
    dR[2 * H + u] = d_n * r[u];
    dprev[u - u0] = d_h * z[u];
  }
}

// backward_impl's plan when the batch is too small to split by rows (unit_team.h): each thread
// writes its units' gradients into the step's rows of grad_x and grad_rec, and the product
// adds dR_t W_hh[:, u0:u1] to the direct part of its units of dh_{t-1}. Not the bfloat16 path.
template <typename T>
void backward_units(int64_t slices, const Steps& steps, int64_t H, const T* W, const T* go,
                    const T* keep_all, const T* out, const T* h_init, T* dh,
                    const GradientRows<T>& grad_x, const GradientRows<T>& grad_rec,
                    BiasGradient<T>& bias_grad) {
  const int64_t B = steps.B;
  backward_by_units(slices, steps, H, 3 * H, W, grad_rec.full, grad_rec.ld, dh, /*accumulate=*/true,
                    [&](int64_t u0, int64_t u1) {
    return [&, u0, u1](int64_t t, int64_t b, int64_t t_next, T* dh_row, T* dprev) {
      const int64_t n = u1 - u0;
      if (t_next >= 0) {
        for (int64_t k = 0; k < 4; ++k)
          prefetch(keep_all + (t_next * B + b) * 4 * H + k * H + u0, n);
        prefetch(go + (t_next * B + b) * H + u0, n);
      }
      T* dR = grad_rec.row(t, b);
      cell_gradients(keep_all + (t * B + b) * 4 * H, previous_row(steps, t, b, out, h_init, H),
                     go + (t * B + b) * H, dh_row, grad_x.row(t, b), dR, dprev, H, u0, u1);
      for (int64_t k = 0; k < 3; ++k) bias_grad.add_units(b, k * H + u0, dR + k * H + u0, n);
    };
  });
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
  const int64_t work_per_row = steps_n * G * (H + 1);
  const int64_t weight_bytes = weight_hh.numel() * weight_hh.element_size();
  const int64_t slices = bf16 ? 1 : unit_slices(B, H, weight_bytes, B * H * G,
                                                rows_split(B, work_per_row));
  // for the plan by rows; the plan by units packs each thread's columns itself
  const BlockWeight<T> hh(WeightSource<T>(slices == 1 ? W.data_ptr<T>() : nullptr, G, H, H, 1,
                                          bf16));  // dR (B x 3H) -> B x H
  const T* go = grad_output.data_ptr<T>();
  const T* keep_all = saved.data_ptr<T>();
  const T* out = out_c.data_ptr<T>();
  const T* h_init = h0.data_ptr<T>();
  T* dh_p = dh.data_ptr<T>();

  BiasGradient<T> bias_grad(B, G);
  if (slices > 1)
    backward_units<T>(slices, steps, H, W.data_ptr<T>(), go, keep_all, out, h_init, dh_p,
                      grad_gates_x, grad_rec, bias_grad);
  if (slices == 1) for_row_blocks(B, work_per_row, [&](int64_t b0, int64_t b1) {
    const int64_t M = b1 - b0;
    std::vector<T> dh_prev(M * H);
    // scratch rows of the bfloat16 side (GradientRows): the step's dR block and one dX row
    std::vector<T> dR_rows(bf16 ? M * G : 0), dX_row(bf16 ? G : 0);
    const int64_t ld_dR = grad_rec.block_stride();
    std::optional<RecurrentWeight<T>> own_hh;
    RecurrentProduct<T> recurrent(hh.in_block(own_hh), M);
    for (int64_t s = steps_n - 1; s >= 0; --s) {
      const int64_t t = steps.time(s);
      T* dR = grad_rec.block(t, b0, dR_rows.data());  // rows b0..b1 of step t, ld_dR apart
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
        const T* h_prev = previous_row(steps, t, b, out, h_init, H);
        const T* g_out = go + (t * B + b) * H;
        T* dX = bf16 ? dX_row.data() : grad_gates_x.block(t, b, nullptr);
        T* dRb = dR + (b - b0) * ld_dR;
        T* dhb = dh_p + b * H;
        cell_gradients(keep, h_prev, g_out, dhb, dX, dRb, dprev, H, 0, H);
        bias_grad.add(b, dRb);
        grad_gates_x.store(t, b, dX);
        grad_rec.store(t, b, dRb);
      }
      recurrent(M, dR, ld_dR, dh_prev.data(), H);
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
  check_bias(bias_hh, h0, 3 * h0.size(1), "bias_hh");
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
  TORCH_CHECK(saved.dim() == 3 && saved.size(2) % 4 == 0,
              "rnnkit fused: saved must be the training forward's (T, B, 4H); got ", saved.sizes());
  const int64_t T = saved.size(0), B = saved.size(1), H = saved.size(2) / 4;
  check_shape(output, {T, B, H}, "output");
  check_shape(grad_output, {T, B, H}, "grad_output");
  check_shape(grad_h_n, {B, H}, "grad_h_n");
  check_shape(h0, {B, H}, "h0");
  check_shape(weight_hh, {3 * H, H}, "weight_hh");
  // read by raw pointer, as lstm_backward's saved activations (a no-op for the forward's own)
  const Tensor saved_c = pooled_contiguous(saved);
  return AT_DISPATCH_FLOATING_TYPES(saved.scalar_type(), "rnnkit_gru_backward", [&] {
    return backward_impl<scalar_t>(grad_output, grad_h_n, output, saved_c, h0, weight_hh, lengths,
                                   reverse, bf16);
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
