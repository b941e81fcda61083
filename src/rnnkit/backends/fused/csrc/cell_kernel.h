// One time step of one cell for B rows, on float32 state buffers that the caller owns.
//
// Shared by the streaming stepper (stream.cpp) and the streaming session (session.cpp). The cell's
// weights are packed once at construction; step() then does no allocation beyond growing its
// scratch the first time a larger B comes. Math per cell as in lstm.cpp, gru.cpp and elman.cpp
// (torch gate order; G = gates * H; P = proj_size or H):
//   LSTM  g = x W_ih^T + h W_hh^T + b;  c' = σ(f) c + σ(i) tanh(g);  m = σ(o) tanh(c');
//         h' = m, or m W_hr^T with a projection (P < H)
//   GRU   r, z = σ(gx + gh);  n = tanh(gx_n + r * gh_n);  h' = n + z (h - n)
//   Elman h' = act(x W_ih^T + h W_hh^T + b), act tanh or relu
// State rows live at h + b * ld_h and c + b * ld_c, so one row of a session's state arena (all layers
// side by side) or a gathered batch of rows both work without copies.
#pragma once

#include <cstring>
#include <vector>

#include "activations.h"
#include "gemm.h"

namespace rnnkit {

enum CellKind { kLSTM = 0, kGRU = 1, kTanh = 2, kReLU = 3 };

struct CellKernel {
  int kind = kLSTM;
  int64_t I = 0, H = 0, P = 0, G = 0;
  PackedMatrix<float> w_x, w_h, w_r;  // x -> G, h -> G, m -> P (projection)
  std::vector<float> bias_x, bias_h;  // GRU keeps b_hh apart: the n gate scales it by r
  std::vector<float> pre_x, pre_h, m, projected;  // scratch, sized for the largest B seen
  int64_t steps = 0;  // taken so far: the panel order of each step's products alternates (gemm.h)

  // Weights in torch's layout: W_ih (G, I), W_hh (G, P), W_hr (P, H); null biases are zero.
  CellKernel(int kind_, int64_t I_, int64_t H_, int64_t P_, const float* w_ih, const float* w_hh,
             const float* b_ih, const float* b_hh, const float* w_hr)
      : kind(kind_), I(I_), H(H_), P(P_) {
    G = H * (kind == kLSTM ? 4 : kind == kGRU ? 3 : 1);
    // Element (k, n) of W^T is W[n][k]: stride_k 1, stride_n = row length.
    w_x.pack(w_ih, I, G, 1, I);
    w_h.pack(w_hh, P, G, 1, P);
    if (w_hr) w_r.pack(w_hr, H, P, 1, H);
    bias_x.assign(G, 0.f);
    bias_h.assign(G, 0.f);
    for (int64_t j = 0; j < G; ++j) {
      const float bx = b_ih ? b_ih[j] : 0.f, bh = b_hh ? b_hh[j] : 0.f;
      if (kind == kGRU) {
        bias_x[j] = bx;
        bias_h[j] = bh;
      } else {
        bias_x[j] = bx + bh;
      }
    }
  }

  // Advance B rows: x (B, I) with row stride ldx; h (B, P) and c (B, H) with row strides ld_h, ld_c.
  void step(int64_t B, const float* x, int64_t ldx, float* h, int64_t ld_h, float* c, int64_t ld_c) {
    if ((int64_t)pre_x.size() < B * G) {
      pre_x.resize(B * G);
      pre_h.resize(kind == kGRU ? B * G : 0);
      m.resize(B * H);
      projected.resize(B * P);
    }
    const PanelOrder order = panel_order_of_step(steps++);
    gemm_assign(B, x, ldx, w_x, pre_x.data(), G, 0, w_x.panels, bias_x.data(), order);
    if (kind == kGRU) {
      gemm_assign(B, h, ld_h, w_h, pre_h.data(), G, 0, w_h.panels, bias_h.data(), order);
      for (int64_t b = 0; b < B; ++b) {
        float* gx = pre_x.data() + b * G;
        const float* gh = pre_h.data() + b * G;
        for (int64_t j = 0; j < 2 * H; ++j) gx[j] += gh[j];
        sigmoid_array(gx, gx, 2 * H);  // r | z
        for (int64_t u = 0; u < H; ++u) gx[2 * H + u] += gx[u] * gh[2 * H + u];
        tanh_array(gx + 2 * H, gx + 2 * H, H);  // n
        float* hb = h + b * ld_h;
        for (int64_t u = 0; u < H; ++u) hb[u] = gx[2 * H + u] + gx[H + u] * (hb[u] - gx[2 * H + u]);
      }
      return;
    }
    gemm_accumulate(B, h, ld_h, w_h, pre_x.data(), G, 0, w_h.panels, order);
    if (kind == kTanh || kind == kReLU) {
      for (int64_t b = 0; b < B; ++b) {
        const float* row = pre_x.data() + b * G;
        float* hb = h + b * ld_h;
        if (kind == kTanh) tanh_array(hb, row, H);
        else for (int64_t u = 0; u < H; ++u) hb[u] = row[u] < 0.f ? 0.f : row[u];  // NaN stays
      }
      return;
    }
    for (int64_t b = 0; b < B; ++b) {
      float* g = pre_x.data() + b * G;
      sigmoid_array(g, g, 2 * H);
      tanh_array(g + 2 * H, g + 2 * H, H);
      sigmoid_array(g + 3 * H, g + 3 * H, H);
      float* cb = c + b * ld_c;
      for (int64_t u = 0; u < H; ++u) cb[u] = g[H + u] * cb[u] + g[u] * g[2 * H + u];
      float* mb = P == H ? h + b * ld_h : m.data() + b * H;
      tanh_array(mb, cb, H);
      for (int64_t u = 0; u < H; ++u) mb[u] *= g[3 * H + u];
    }
    if (P != H) {
      gemm_assign<float>(B, m.data(), H, w_r, projected.data(), P, 0, w_r.panels, nullptr, order);
      for (int64_t b = 0; b < B; ++b) std::memcpy(h + b * ld_h, projected.data() + b * P, P * sizeof(float));
    }
  }
};

}  // namespace rnnkit
