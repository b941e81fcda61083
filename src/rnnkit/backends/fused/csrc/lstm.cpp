// Fused LSTM recurrence (optional projection): the whole sequence forward and backward.
//
// Per step, with G = gates_x[t] + b_hh + h W_hh^T (B x 4H, gate order i, f, g, o):
//   i, f, o = sigmoid(G_i, G_f, G_o)   g = tanh(G_g)
//   c' = f c + i g      m = o tanh(c')      h' = m (or m W_hr^T with projection, width P)
// Forward saves the activated gates (T, B, 4H) and the cells (T, B, H) for backward. Steps
// past a sequence's length leave its state alone and output zeros (see common.h, Steps). With
// bf16 (CPU autocast) gates_x may be bfloat16, and backward returns grad_gates_x in bfloat16
// (common.h, GateRows and GradientRows).
#include <torch/library.h>

#include "common.h"
#include "dense.h"
#include "unit_team.h"

namespace rnnkit {
namespace {

using at::Tensor;
using c10::optional;

// The cell update of one row (or of a slice of H of its units), in one pass: g holds the
// pre-activations i | f | g | o (4H) without gates_x, which is added as they are read (gx, the
// row of gates_x; null when g already holds it), c the cell (updated), m receives o * tanh(c');
// saved_gates / saved_cells (training) receive the activated gates and c'. In gx and
// saved_gates the gates lie S apart (S = H for a whole row; the row's width when a thread
// updates a slice of its units, unit_team.h). Generic version: one array pass per activation.
template <typename T>
inline void cell_row(T* g, const T* gx, T* c, T* m, T* saved_gates, T* saved_cells, int64_t H,
                     int64_t S, T* tanh_c) {
  if (gx) {
    for (int64_t k = 0; k < 4; ++k) {
      RNNKIT_NO_ALIAS
      for (int64_t u = 0; u < H; ++u) g[k * H + u] += gx[k * S + u];
    }
  }
  sigmoid_array(g, g, 2 * H);
  tanh_array(g + 2 * H, g + 2 * H, H);
  sigmoid_array(g + 3 * H, g + 3 * H, H);
  RNNKIT_NO_ALIAS
  for (int64_t u = 0; u < H; ++u) c[u] = g[H + u] * c[u] + g[u] * g[2 * H + u];
  tanh_array(tanh_c, c, H);
  RNNKIT_NO_ALIAS
  for (int64_t u = 0; u < H; ++u) m[u] = g[3 * H + u] * tanh_c[u];
  if (saved_gates) {
    for (int64_t k = 0; k < 4; ++k) std::memcpy(saved_gates + k * S, g + k * H, H * sizeof(T));
    std::memcpy(saved_cells, c, H * sizeof(T));
  }
}

#if RNNKIT_AVX512
// float32: everything for 16 units stays in registers.
template <>
inline void cell_row<float>(float* g, const float* gx, float* c, float* m, float* saved_gates,
                            float* saved_cells, int64_t H, int64_t S, float*) {
  // pre-activation of gate k (0..3) for units u..u+n
  auto pre = [&](int k, int64_t u, int n) {
    const __m512 v = vload(g + k * H + u, n);
    return gx ? _mm512_add_ps(v, vload(gx + k * S + u, n)) : v;
  };
  for (int64_t u = 0; u < H; u += 16) {
    const int n = (int)std::min<int64_t>(16, H - u);
    const __m512 i = vsigmoid(pre(0, u, n)), f = vsigmoid(pre(1, u, n));
    const __m512 gg = vtanh(pre(2, u, n)), o = vsigmoid(pre(3, u, n));
    const __m512 c_new = _mm512_fmadd_ps(f, vload(c + u, n), _mm512_mul_ps(i, gg));
    vstore(c + u, c_new, n);
    vstore(m + u, _mm512_mul_ps(o, vtanh(c_new)), n);
    if (saved_gates) {
      vstore(saved_gates + u, i, n);
      vstore(saved_gates + S + u, f, n);
      vstore(saved_gates + 2 * S + u, gg, n);
      vstore(saved_gates + 3 * S + u, o, n);
      vstore(saved_cells + u, c_new, n);
    }
  }
}
#endif
#if RNNKIT_AVX2
// float32 on 256-bit vectors: the same single pass, 8 units at a time.
template <>
inline void cell_row<float>(float* g, const float* gx, float* c, float* m, float* saved_gates,
                            float* saved_cells, int64_t H, int64_t S, float*) {
  auto pre = [&](int k, int64_t u, int n) {
    const __m256 v = vload(g + k * H + u, n);
    return gx ? _mm256_add_ps(v, vload(gx + k * S + u, n)) : v;
  };
  for (int64_t u = 0; u < H; u += 8) {
    const int n = (int)std::min<int64_t>(8, H - u);
    const __m256 i = vsigmoid(pre(0, u, n)), f = vsigmoid(pre(1, u, n));
    const __m256 gg = vtanh(pre(2, u, n)), o = vsigmoid(pre(3, u, n));
    const __m256 c_new = _mm256_fmadd_ps(f, vload(c + u, n), _mm256_mul_ps(i, gg));
    vstore(c + u, c_new, n);
    vstore(m + u, _mm256_mul_ps(o, vtanh(c_new)), n);
    if (saved_gates) {
      vstore(saved_gates + u, i, n);
      vstore(saved_gates + S + u, f, n);
      vstore(saved_gates + 2 * S + u, gg, n);
      vstore(saved_gates + 3 * S + u, o, n);
      vstore(saved_cells + u, c_new, n);
    }
  }
}
#endif

// The input projection done inside the time loop (lstm_inference): each step starts its gates
// from x_t W_ih^T + b_ih + b_hh instead of reading a precomputed gates_x[t]. Without gradients
// nothing needs gates_x afterwards, and writing the (T, B, 4H) buffer and reading it back cost
// more than the per-step product (LSTM inference at B = 64, H = 64 spent a third of its time
// in the separate projection and the read of its result).
template <typename T>
struct InputStep {
  const T* x = nullptr;  // x[t, b, :] at x + t * stride_t + b * stride_b
  int64_t stride_t = 0, stride_b = 0, I = 0;
  const T* weight = nullptr;  // W_ih (4H x I), contiguous: each row block packs its own copy
  std::vector<T> bias;        // b_ih + b_hh (4H)
};

// forward_impl's plan when the batch is too small to split by rows (unit_team.h): each thread
// runs the cell for its units, from gates_x only (the layers project inside the loop from 8
// rows up, where rows split); no projection, not the bfloat16 path. h, c: the state (B, H),
// updated in place.
template <typename T>
void forward_units(int64_t slices, const Steps& steps, int64_t H, const T* W, const T* b_hh,
                   const GateRows<T>& gates_rows, T* h, T* c, T* out, T* saved_gates,
                   T* saved_cells) {
  const int64_t B = steps.B, G = 4 * H;
  forward_by_units(slices, steps, H, 4, W, b_hh, h, out, [&](int64_t u0, int64_t u1) {
    return [&, u0, u1, tanh_c = std::vector<T>(u1 - u0)](int64_t t, int64_t b, int64_t t_next,
                                                         T* pre, const T*, T* h_next) mutable {
      const int64_t n = u1 - u0;
      const T* gx = gates_rows.full + t * gates_rows.stride_t + b * gates_rows.stride_b + u0;
      if (t_next >= 0)
        for (int64_t k = 0; k < 4; ++k) prefetch(gx + (t_next - t) * gates_rows.stride_t + k * H, n);
      cell_row<T>(pre, gx, c + b * H + u0, h_next + u0,
                  saved_gates ? saved_gates + (t * B + b) * G + u0 : nullptr,
                  saved_cells ? saved_cells + (t * B + b) * H + u0 : nullptr, n, H, tanh_c.data());
    };
  });
}

// The sequence from precomputed gates_x (T, B, 4H), or with `input` from x, gates_x then unused
// and `shape` giving (T, B, 4H).
template <typename T>
std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> forward_impl(
    const Tensor& gates_x, const Tensor& h0, const Tensor& c0, const Tensor& weight_hh,
    const optional<Tensor>& bias_hh, const optional<Tensor>& weight_hr,
    const optional<Tensor>& lengths, bool reverse, bool training, bool bf16,
    const InputStep<T>* input = nullptr, at::IntArrayRef shape = {}) {
  const int64_t steps_n = input ? shape[0] : gates_x.size(0), B = input ? shape[1] : gates_x.size(1);
  const int64_t G = input ? shape[2] : gates_x.size(2), H = G / 4;
  const bool proj = weight_hr.has_value() && weight_hr->defined();
  const int64_t P = proj ? weight_hr->size(0) : H;
  const auto opts = h0.options();
  Tensor output = pooled_empty({steps_n, B, P}, opts);
  Tensor h_n = h0.contiguous().clone(), c_n = c0.contiguous().clone();
  // Rows of padding steps are never written; zero them so the op's outputs are deterministic.
  const bool padded = lengths.has_value() && lengths->defined();
  auto allocate = [&](at::IntArrayRef shape) {
    return padded ? pooled_zeros(shape, opts) : pooled_empty(shape, opts);
  };
  Tensor gates = training ? allocate({steps_n, B, G}) : at::empty({0}, opts);
  Tensor cells = training ? allocate({steps_n, B, H}) : at::empty({0}, opts);
  if (steps_n == 0) return {output, h_n, c_n, gates, cells};

  const Tensor W = weight_hh.contiguous();
  Tensor bias = bias_hh.has_value() && bias_hh->defined() ? bias_hh->contiguous() : Tensor();
  const T* b_hh = bias.defined() ? bias.data_ptr<T>() : nullptr;
  const GateRows<T> gates_rows(input ? Tensor() : gates_x);
  T* h = h_n.data_ptr<T>();
  T* c = c_n.data_ptr<T>();
  T* out = output.data_ptr<T>();
  T* saved_gates = training ? gates.data_ptr<T>() : nullptr;
  T* saved_cells = training ? cells.data_ptr<T>() : nullptr;
  const Steps steps = make_steps(steps_n, B, reverse, lengths);
  const int64_t work_per_row = steps_n * G * (P + 1);

  const int64_t weight_bytes = weight_hh.numel() * weight_hh.element_size();
  const int64_t slices = input || proj || bf16 || gates_rows.low
                             ? 1
                             : unit_slices(B, H, weight_bytes, B * H * G,
                                           rows_split(B, work_per_row));
  if (slices > 1) {
    forward_units<T>(slices, steps, H, W.data_ptr<T>(), b_hh, gates_rows, h, c, out,
                     saved_gates, saved_cells);
    return {output, h_n, c_n, gates, cells};
  }

  const BlockWeight<T> hh(WeightSource<T>(W.data_ptr<T>(), P, G, 1, P, bf16));  // h -> B x 4H
  const Tensor R = proj ? weight_hr->contiguous() : Tensor();
  const BlockWeight<T> hr(WeightSource<T>(proj ? R.data_ptr<T>() : nullptr, proj ? H : 0, P, 1,
                                          H, bf16));  // m (B x H) -> B x P

  for_row_blocks(B, work_per_row, [&](int64_t b0, int64_t b1) {
    const int64_t M = b1 - b0;
    std::optional<RecurrentWeight<T>> own_hh, own_hr;
    RecurrentProduct<T> recurrent(hh.in_block(own_hh), M), projection(hr.in_block(own_hr), M);
    // W_ih of the in-loop projection: packed by this block's thread too (see BlockWeight); the
    // layers take that path only while W_ih and W_hh fit in L2
    PackedMatrix<T> w_ih;  // x (B x I) -> B x 4H
    if (input) w_ih.pack(input->weight, input->I, G, 1, input->I);
    std::vector<T> pre(M * G), m(proj ? M * H : 0), projected(proj ? M * P : 0), tanh_c(H);
    std::vector<T> x_row(gates_rows.low ? G : 0);
    for (int64_t s = 0; s < steps_n; ++s) {
      const int64_t t = steps.time(s);
      if (input) {
        gemm(M, input->x + t * input->stride_t + b0 * input->stride_b, input->stride_b,
             w_ih, pre.data(), G, /*overwrite=*/true, input->bias.data());
        recurrent(M, h + b0 * P, P, pre.data(), G);
      } else {
        // h W_hh^T + b_hh written fresh; the cell adds the row of gates_x as it reads it. A
        // separate pass copying gates_x + b_hh into pre for the product to accumulate onto was
        // a fifth of the step's pointwise time at H = 32 (perf).
        recurrent(M, h + b0 * P, P, pre.data(), G, /*overwrite=*/true, b_hh);
      }
      const int64_t t_next = steps.time_after(s);
      for (int64_t b = b0; b < b1; ++b) {
        if (t_next >= 0) {
          if (input) prefetch(input->x + t_next * input->stride_t + b * input->stride_b, input->I);
          else gates_rows.prefetch_row(t_next, b);
        }
        T* out_row = out + (t * B + b) * P;
        if (!steps.valid(t, b)) {
          std::fill(out_row, out_row + P, T(0));
          continue;
        }
        T* mb = proj ? m.data() + (b - b0) * H : h + b * P;
        cell_row<T>(pre.data() + (b - b0) * G,
                    input ? nullptr : gates_rows.row(t, b, x_row.data()), c + b * H, mb,
                    training ? saved_gates + (t * B + b) * G : nullptr,
                    training ? saved_cells + (t * B + b) * H : nullptr, H, H, tanh_c.data());
        if (!proj) std::memcpy(out_row, mb, H * sizeof(T));
      }
      if (proj) {
        projection(M, m.data(), H, projected.data(), P, /*overwrite=*/true);
        for (int64_t b = b0; b < b1; ++b) {
          if (!steps.valid(t, b)) continue;
          std::memcpy(h + b * P, projected.data() + (b - b0) * P, P * sizeof(T));
          std::memcpy(out + (t * B + b) * P, projected.data() + (b - b0) * P, P * sizeof(T));
        }
      }
    }
  });
  return {output, h_n, c_n, gates, cells};
}

// The cell's backward for units [u0, u1) of one row (H units, gates i | f | g | o): from the
// activated gates g (4H), the cells c_t and c_prev and the gradient dm of m = o tanh(c_t), the
// gate gradients dG (pre-activation, 4H); dc holds the gradient of c_t and leaves with that of
// c_prev. tanh_c (H) receives tanh(c_t) at the same units.
//   dc_t = dc + dm o (1 - tanh^2 c_t)     dG_i = dc_t g i (1 - i)    dG_f = dc_t c_prev f (1 - f)
//   dG_g = dc_t i (1 - g^2)    dG_o = dm tanh(c_t) o (1 - o)    dc_prev = dc_t f
template <typename T>
inline void cell_backward_row(const T* g, const T* c_t, const T* c_prev, const T* dm, T* dc, T* dG,
                              int64_t H, int64_t u0, int64_t u1, T* tanh_c) {
  tanh_array(tanh_c + u0, c_t + u0, u1 - u0);
  RNNKIT_NO_ALIAS
  for (int64_t u = u0; u < u1; ++u) {
    const T i = g[u], f = g[H + u], gg = g[2 * H + u], o = g[3 * H + u], tc = tanh_c[u];
    const T d_o = dm[u] * tc;
    const T d_c = dc[u] + dm[u] * o * (T(1) - tc * tc);
    dG[u] = d_c * gg * i * (T(1) - i);
    dG[H + u] = d_c * c_prev[u] * f * (T(1) - f);
    dG[2 * H + u] = d_c * i * (T(1) - gg * gg);
    dG[3 * H + u] = d_o * o * (T(1) - o);
    dc[u] = d_c * f;
  }
}

// backward_impl's plan when the batch is too small to split by rows (unit_team.h): each thread
// computes its units' gate gradients into grad_gates[t] and their part of dh_{t-1}. dh and dc
// (B, H) are only ever touched at a thread's own units. No projection, not the bfloat16 path.
template <typename T>
void backward_units(int64_t slices, const Steps& steps, int64_t H, const T* W, const T* go,
                    const T* act, const T* cell, const T* c_init, T* dh, T* dc,
                    const GradientRows<T>& grad_gates, BiasGradient<T>& bias_grad) {
  const int64_t B = steps.B, G = 4 * H;
  backward_by_units(slices, steps, H, G, W, grad_gates.full, grad_gates.ld, dh, /*accumulate=*/false,
                    [&](int64_t u0, int64_t u1) {
    return [&, u0, u1, tanh_c = std::vector<T>(H)](int64_t t, int64_t b, int64_t t_next,
                                                   T* dh_row, T*) mutable {
      const int64_t n = u1 - u0;
      if (t_next >= 0) {
        for (int64_t k = 0; k < 4; ++k) prefetch(act + (t_next * B + b) * G + k * H + u0, n);
        prefetch(cell + (t_next * B + b) * H + u0, n);
        prefetch(go + (t_next * B + b) * H + u0, n);
      }
      const T* g_out = go + (t * B + b) * H;
      RNNKIT_NO_ALIAS
      for (int64_t u = u0; u < u1; ++u) dh_row[u] += g_out[u];
      T* dG = grad_gates.row(t, b);
      cell_backward_row(act + (t * B + b) * G, cell + (t * B + b) * H,
                        previous_row(steps, t, b, cell, c_init, H), dh_row, dc + b * H, dG, H, u0,
                        u1, tanh_c.data());
      for (int64_t k = 0; k < 4; ++k) bias_grad.add_units(b, k * H + u0, dG + k * H + u0, n);
    };
  });
}

template <typename T>
std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor> backward_impl(
    const Tensor& grad_output_, const Tensor& grad_h_n, const Tensor& grad_c_n,
    const Tensor& output, const Tensor& gates, const Tensor& cells, const Tensor& h0_,
    const Tensor& c0_, const Tensor& weight_hh, const optional<Tensor>& weight_hr,
    const optional<Tensor>& lengths, bool reverse, bool bf16) {
  const int64_t steps_n = gates.size(0), B = gates.size(1), G = gates.size(2), H = G / 4;
  const bool proj = weight_hr.has_value() && weight_hr->defined();
  const int64_t P = proj ? weight_hr->size(0) : H;
  const auto opts = gates.options();
  const Steps steps = make_steps(steps_n, B, reverse, lengths);
  const Tensor grad_output = pooled_contiguous(grad_output_), h0 = h0_.contiguous(), c0 = c0_.contiguous();
  GradientRows<T> grad_gates(steps, G, opts, bf16);
  Tensor dh = grad_h_n.contiguous().clone(), dc = grad_c_n.contiguous().clone();

  const Tensor W = weight_hh.contiguous();
  const int64_t work_per_row = steps_n * G * (P + 1);
  const int64_t weight_bytes = weight_hh.numel() * weight_hh.element_size();
  const int64_t slices = proj || bf16 ? 1 : unit_slices(B, H, weight_bytes, B * H * G,
                                                        rows_split(B, work_per_row));
  // for the plan by rows; the plan by units packs each thread's columns itself
  const BlockWeight<T> hh(WeightSource<T>(slices == 1 ? W.data_ptr<T>() : nullptr, G, P, P, 1,
                                          bf16));  // dG (B x 4H) -> B x P
  const Tensor R = proj ? weight_hr->contiguous() : Tensor();
  const BlockWeight<T> hr(WeightSource<T>(proj ? R.data_ptr<T>() : nullptr, proj ? P : 0, H, H,
                                          1, bf16));  // dh (B x P) -> dm (B x H)
  Tensor grad_h_all, m_all;
  if (proj) {
    grad_h_all = buffer_for(steps, {steps_n, B, P}, opts);
    m_all = buffer_for(steps, {steps_n, B, H}, opts);
  }
  const T* go = grad_output.data_ptr<T>();
  const T* act = gates.data_ptr<T>();
  const T* cell = cells.data_ptr<T>();
  const T* c_init = c0.data_ptr<T>();
  T* dh_p = dh.data_ptr<T>();
  T* dc_p = dc.data_ptr<T>();

  BiasGradient<T> bias_grad(B, G);
  if (slices > 1)
    backward_units<T>(slices, steps, H, W.data_ptr<T>(), go, act, cell, c_init, dh_p, dc_p,
                      grad_gates, bias_grad);
  if (slices == 1) for_row_blocks(B, work_per_row, [&](int64_t b0, int64_t b1) {
    const int64_t M = b1 - b0;
    std::vector<T> dm(proj ? M * H : 0), dh_prev(M * P), tanh_c(H);
    std::vector<T> dG_rows(bf16 ? M * G : 0);  // scratch of the bfloat16 side
    const int64_t ld_dG = grad_gates.block_stride();
    std::optional<RecurrentWeight<T>> own_hh, own_hr;
    RecurrentProduct<T> recurrent(hh.in_block(own_hh), M), projection(hr.in_block(own_hr), M);
    for (int64_t s = steps_n - 1; s >= 0; --s) {
      const int64_t t = steps.time(s);
      for (int64_t b = b0; b < b1; ++b) {
        if (!steps.valid(t, b)) continue;
        const T* g_out = go + (t * B + b) * P;
        RNNKIT_NO_ALIAS
        for (int64_t j = 0; j < P; ++j) dh_p[b * P + j] += g_out[j];
      }
      if (proj) {
        projection(M, dh_p + b0 * P, P, dm.data(), H, /*overwrite=*/true);
        T* dh_all = grad_h_all.data_ptr<T>();
        for (int64_t b = b0; b < b1; ++b)
          if (steps.valid(t, b)) std::memcpy(dh_all + (t * B + b) * P, dh_p + b * P, P * sizeof(T));
      }
      T* dG = grad_gates.block(t, b0, dG_rows.data());  // rows b0..b1 of step t, ld_dG apart
      const int64_t t_next = steps.time_before(s);
      for (int64_t b = b0; b < b1; ++b) {
        if (t_next >= 0) {
          prefetch(act + (t_next * B + b) * G, G);
          prefetch(cell + (t_next * B + b) * H, H);
          prefetch(go + (t_next * B + b) * P, P);
        }
        if (!steps.valid(t, b)) continue;
        const T* g = act + (t * B + b) * G;
        const T* c_t = cell + (t * B + b) * H;
        const T* c_prev = previous_row(steps, t, b, cell, c_init, H);
        const T* dmb = proj ? dm.data() + (b - b0) * H : dh_p + b * P;
        T* dGb = dG + (b - b0) * ld_dG;
        cell_backward_row(g, c_t, c_prev, dmb, dc_p + b * H, dGb, H, 0, H, tanh_c.data());
        if (proj) {
          T* mb = m_all.data_ptr<T>() + (t * B + b) * H;
          RNNKIT_NO_ALIAS
          for (int64_t u = 0; u < H; ++u) mb[u] = g[3 * H + u] * tanh_c[u];
        }
        bias_grad.add(b, dGb);
        grad_gates.store(t, b, dGb);
      }
      recurrent(M, dG, ld_dG, dh_prev.data(), P, /*overwrite=*/true);
      for (int64_t b = b0; b < b1; ++b)
        if (steps.valid(t, b))
          std::memcpy(dh_p + b * P, dh_prev.data() + (b - b0) * P, P * sizeof(T));
    }
  });

  // Weight gradients: one large GEMM each over all (t, b), instead of T small ones.
  const Tensor h_prev = gather_previous<T>(steps, output.contiguous().data_ptr<T>(),
                                           h0.data_ptr<T>(), P, opts, bf16);
  Tensor grad_weight_hh = weight_gradient(grad_gates.tensor.view({steps_n * B, G}).t(),
                                          h_prev.view({steps_n * B, P}), bf16);
  Tensor grad_bias_hh = bias_grad.total(opts);
  Tensor grad_weight_hr =
      proj ? weight_gradient(grad_h_all.view({steps_n * B, P}).t(), m_all.view({steps_n * B, H}), bf16)
           : at::empty({0}, opts);
  return {grad_gates.tensor, dh, dc, grad_weight_hh, grad_bias_hh, grad_weight_hr};
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> lstm_forward(
    const Tensor& gates_x, const Tensor& h0, const Tensor& c0, const Tensor& weight_hh,
    const optional<Tensor>& bias_hh, const optional<Tensor>& weight_hr,
    const optional<Tensor>& lengths, bool reverse, bool training, bool bf16) {
  check_cpu_float(h0, "h0");
  check_gates_x(gates_x, h0, bf16);
  check_shapes(gates_x, h0, weight_hh, 4, c0.size(1));
  check_lstm_state(h0, c0, weight_hr, c0.size(1));
  check_bias(bias_hh, h0, 4 * c0.size(1), "bias_hh");
  TORCH_CHECK(gates_x.dim() == 3 && gates_x.stride(2) == 1, "rnnkit fused: gates_x must be (T, B, 4H) with contiguous rows");
  return AT_DISPATCH_FLOATING_TYPES(h0.scalar_type(), "rnnkit_lstm_forward", [&] {
    return forward_impl<scalar_t>(gates_x, h0, c0, weight_hh, bias_hh, weight_hr, lengths, reverse, training,
                                  bf16);
  });
}

// The forward without gradients, its input projection inside the time loop (see InputStep).
std::tuple<Tensor, Tensor, Tensor> lstm_inference(
    const Tensor& x, const Tensor& h0, const Tensor& c0, const Tensor& weight_ih,
    const optional<Tensor>& bias_ih, const Tensor& weight_hh, const optional<Tensor>& bias_hh,
    const optional<Tensor>& weight_hr, const optional<Tensor>& lengths, bool reverse) {
  check_cpu_float(x, "x");
  TORCH_CHECK(x.dim() == 3 && x.stride(2) == 1, "rnnkit fused: x must be (T, B, I) with contiguous rows");
  TORCH_CHECK(weight_ih.dim() == 2 && weight_ih.size(1) == x.size(2) && weight_ih.size(0) % 4 == 0,
              "rnnkit fused: weight_ih must be (4H, I) for x of width I = ", x.size(2));
  const int64_t G = weight_ih.size(0);
  check_cpu_float(h0, "h0");
  TORCH_CHECK(weight_ih.scalar_type() == x.scalar_type() && h0.scalar_type() == x.scalar_type(),
              "rnnkit fused: x, h0 and weight_ih must share one dtype; got ", x.scalar_type(), ", ",
              h0.scalar_type(), " and ", weight_ih.scalar_type());
  // the shapes lstm_forward checks, with gates_x the (T, B, 4H) that is never materialized
  TORCH_CHECK(h0.dim() == 2 && h0.size(0) == x.size(1) && weight_hh.dim() == 2 &&
                  weight_hh.size(0) == G && weight_hh.size(1) == h0.size(1) &&
                  weight_hh.scalar_type() == x.scalar_type(),
              "rnnkit fused: shapes do not fit together: x ", x.sizes(), ", h0 ", h0.sizes(),
              ", weight_hh ", weight_hh.sizes(), " (expected (T, B, I), (B, width) and (4 H, "
              "width) with H = ", G / 4, ")");
  check_lstm_state(h0, c0, weight_hr, G / 4);
  check_bias(bias_ih, h0, G, "bias_ih");
  check_bias(bias_hh, h0, G, "bias_hh");
  return AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnkit_lstm_inference", [&] {
    using T = scalar_t;
    InputStep<T> input;
    input.x = x.data_ptr<T>();
    input.stride_t = x.stride(0);
    input.stride_b = x.stride(1);
    input.I = x.size(2);
    const Tensor W = weight_ih.contiguous();
    input.weight = W.data_ptr<T>();
    input.bias.assign(G, T(0));
    for (const optional<Tensor>* b : {&bias_ih, &bias_hh}) {
      if (!b->has_value() || !(*b)->defined()) continue;
      const Tensor values = (*b)->contiguous();
      const T* v = values.data_ptr<T>();
      for (int64_t j = 0; j < G; ++j) input.bias[j] += v[j];
    }
    auto [output, h_n, c_n, gates, cells] =
        forward_impl<T>(Tensor(), h0, c0, weight_hh, c10::nullopt, weight_hr, lengths, reverse,
                        /*training=*/false, /*bf16=*/false, &input, {x.size(0), x.size(1), G});
    return std::make_tuple(output, h_n, c_n);
  });
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor> lstm_backward(
    const Tensor& grad_output, const Tensor& grad_h_n, const Tensor& grad_c_n, const Tensor& output,
    const Tensor& gates, const Tensor& cells, const Tensor& h0, const Tensor& c0,
    const Tensor& weight_hh, const optional<Tensor>& weight_hr, const optional<Tensor>& lengths,
    bool reverse, bool bf16) {
  check_cpu_float(gates, "gates");
  TORCH_CHECK(gates.dim() == 3 && gates.size(2) % 4 == 0,
              "rnnkit fused: gates must be the training forward's (T, B, 4H); got ", gates.sizes());
  const int64_t T = gates.size(0), B = gates.size(1), H = gates.size(2) / 4;
  const bool proj = weight_hr.has_value() && weight_hr->defined();
  const int64_t P = proj ? weight_hr->size(0) : H;
  if (proj) check_shape(*weight_hr, {P, H}, "weight_hr");
  check_shape(output, {T, B, P}, "output");
  check_shape(grad_output, {T, B, P}, "grad_output");
  check_shape(cells, {T, B, H}, "cells");
  check_shape(grad_h_n, {B, P}, "grad_h_n");
  check_shape(grad_c_n, {B, H}, "grad_c_n");
  check_shape(h0, {B, P}, "h0");
  check_shape(c0, {B, H}, "c0");
  check_shape(weight_hh, {4 * H, P}, "weight_hh");
  // The kernel reads the saved activations by raw pointer: a view of another layout (a direct
  // op call with an expanded tensor) must not be read past its storage. A no-op for the
  // training forward's own tensors.
  const Tensor gates_c = pooled_contiguous(gates), cells_c = pooled_contiguous(cells);
  return AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "rnnkit_lstm_backward", [&] {
    return backward_impl<scalar_t>(grad_output, grad_h_n, grad_c_n, output, gates_c, cells_c, h0,
                                   c0, weight_hh, weight_hr, lengths, reverse, bf16);
  });
}

}  // namespace
}  // namespace rnnkit

TORCH_LIBRARY_FRAGMENT(rnnkit, m) {
  m.def("lstm_forward(Tensor gates_x, Tensor h0, Tensor c0, Tensor weight_hh, Tensor? bias_hh, "
        "Tensor? weight_hr, Tensor? lengths, bool reverse, bool training, bool bf16=False) "
        "-> (Tensor output, Tensor h_n, Tensor c_n, Tensor gates, Tensor cells)");
  m.def("lstm_inference(Tensor x, Tensor h0, Tensor c0, Tensor weight_ih, Tensor? bias_ih, "
        "Tensor weight_hh, Tensor? bias_hh, Tensor? weight_hr, Tensor? lengths, bool reverse) "
        "-> (Tensor output, Tensor h_n, Tensor c_n)");
  m.def("lstm_backward(Tensor grad_output, Tensor grad_h_n, Tensor grad_c_n, Tensor output, "
        "Tensor gates, Tensor cells, Tensor h0, Tensor c0, Tensor weight_hh, Tensor? weight_hr, "
        "Tensor? lengths, bool reverse, bool bf16=False) -> (Tensor grad_gates_x, Tensor grad_h0, "
        "Tensor grad_c0, "
        "Tensor grad_weight_hh, Tensor grad_bias_hh, Tensor grad_weight_hr)");
}

TORCH_LIBRARY_IMPL(rnnkit, CPU, m) {
  m.impl("lstm_forward", &rnnkit::lstm_forward);
  m.impl("lstm_inference", &rnnkit::lstm_inference);
  m.impl("lstm_backward", &rnnkit::lstm_backward);
}
