// Autograd for the fused ops, registered in C++ (the Autograd dispatch key).
//
// Why C++ and not torch.library.register_autograd: the Python route wraps every call in a Python
// autograd.Function, and at batch 1 and small H that wrapper, not the arithmetic, was most of a
// training step (about 0.1 ms per op per direction, against ~0.3 us per time step of work).
// Each Function below redispatches its op below autograd, so the same code runs for real, fake
// and meta tensors (torch.compile and export trace through it), and its backward calls the
// family's *_backward op through the dispatcher as well.
#include <torch/autograd.h>
#include <torch/library.h>

#include <optional>

#include "buffer_pool.h"

namespace rnnkit {
namespace {

using at::Tensor;
using c10::optional;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The typed handle of an op of the rnnkit library, looked up once.
template <typename Signature>
c10::TypedOperatorHandle<Signature> op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Signature>();
}

// The sequence ops run with materialize_grads off: otherwise autograd fills a zero gradient,
// T x B x 4H, for every output nobody used (the saved gates and cells, which are outputs only
// so that backward can have them; the output sequence when only the final state is used), ~1 ms
// per training step at B = 16, H = 256. Here only the gradients the kernels read are filled.
//
// The pool holds real CPU memory, so it serves only real CPU tensors. Under a trace
// (torch.compile's AOT autograd, export) `like` is a fake or functional tensor, possibly with
// symbolic sizes: its zeros are made by a dispatched op, which the trace records.
Tensor or_zeros(const Tensor& grad, const Tensor& like) {
  if (grad.defined()) return grad;
  static const c10::DispatchKeySet traced(
      {c10::DispatchKey::Python, c10::DispatchKey::Functionalize});
  if (like.is_cpu() && !like.key_set().has_any(traced)) {
    return pooled_zeros(like.sizes(), like.options());
  }
  return at::zeros_like(like, at::MemoryFormat::Contiguous);
}

// With bf16=True the backward ops return grad_gates_x in bfloat16, what the bfloat16 input
// projection of the autocast path takes. An op called with a float32 gates_x gets its gradient in
// float32 (rounded through bfloat16 all the same).
Tensor in_dtype_of_gates_x(const Tensor& grad, AutogradContext* ctx) {
  const auto dtype = static_cast<at::ScalarType>(ctx->saved_data["gates_x_dtype"].toInt());
  return grad.scalar_type() == dtype ? grad : grad.to(dtype);
}

void save_gates_x_dtype(AutogradContext* ctx, const Tensor& gates_x) {
  ctx->saved_data["gates_x_dtype"] = static_cast<int64_t>(gates_x.scalar_type());
}

// The *_backward ops have no derivative of their own, so a backward that records a graph
// (create_graph=True, for second derivatives) cannot be right through them: say so rather than
// hand back gradients that ignore it. torch's fallback for ops without an autograd kernel only
// warned there (and treated the missing derivative as zero).
void check_first_order(const char* cell) {
  TORCH_CHECK(!at::GradMode::is_enabled(), "rnnkit fused ", cell, ": no second derivatives "
              "(backward with create_graph=True); run the layer with backend='reference' for them");
}

// Then the backward op runs below autograd. Through the dispatcher's fallback for ops without an
// autograd kernel every argument was boxed and every output inspected: ~15% of a training call
// at batch 1, H = 32, T = 1 (perf).
using BelowAutograd = at::AutoDispatchBelowADInplaceOrView;

// Tensor? arguments come back from saved variables as undefined tensors when absent.
optional<Tensor> maybe(const Tensor& t) { return t.defined() ? optional<Tensor>(t) : c10::nullopt; }

// The sequence kernels compute every gradient in one pass anyway, so backward returns them all
// (autograd drops those of inputs that need none); an absent optional input gets none.
Tensor if_present(const Tensor& input, const Tensor& grad) {
  return input.defined() ? grad : Tensor();
}

// Whether autograd has anything to record for a call with these tensor arguments. When it has
// not (under no_grad or inference_mode, or no argument requires grad), the kernels below call
// the op directly: Function::apply builds its node, the saved-data map and the output wrapping
// even then, ~3 us of a ~9 us call at batch 1 and T = 1. An argument carrying a forward-mode
// tangent still goes through apply, which raises that custom C++ Functions have no jvp.
inline bool requires_grad(const Tensor& t) { return t.defined() && t.requires_grad(); }
inline bool requires_grad(const optional<Tensor>& t) { return t.has_value() && requires_grad(*t); }
inline bool has_tangent(const Tensor& t) { return t.defined() && t._fw_grad(/*level=*/0).defined(); }
inline bool has_tangent(const optional<Tensor>& t) { return t.has_value() && has_tangent(*t); }
template <typename... Tensors>
bool records_graph(const Tensors&... tensors) {
  return (at::GradMode::is_enabled() && (requires_grad(tensors) || ...)) ||
         (has_tangent(tensors) || ...);
}

// ---- LSTM ---------------------------------------------------------------------------------------
using LstmForward = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor>(
    const Tensor&, const Tensor&, const Tensor&, const Tensor&, const optional<Tensor>&,
    const optional<Tensor>&, const optional<Tensor>&, bool, bool, bool);
using LstmBackward = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>(
    const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
    const Tensor&, const Tensor&, const Tensor&, const optional<Tensor>&, const optional<Tensor>&,
    bool, bool);

const c10::TypedOperatorHandle<LstmForward>& lstm_forward_op() {
  static const auto handle = op<LstmForward>("rnnkit::lstm_forward");
  return handle;
}

// The hidden states backward reads, as a private copy of the returned output: the caller may
// edit that output in place (F.relu(out, inplace=True), out[..., 0] = 0), as torch.nn allows,
// and saving the output itself would then make backward fail its version check. The copy is a
// streaming pass over B x T x H values (~1% of a training step at the LM's default sizes).
inline Tensor hidden_states_for_backward(const Tensor& out, bool training) {
  if (!training) return out;  // nothing is read back; backward refuses to run
  return out.clone();  // dispatched, so fake tensors (torch.compile, export) copy too
}

struct LstmFunction : torch::autograd::Function<LstmFunction> {
  static variable_list forward(AutogradContext* ctx, const Tensor& gates_x, const Tensor& h0,
                               const Tensor& c0, const Tensor& weight_hh,
                               const optional<Tensor>& bias_hh, const optional<Tensor>& weight_hr,
                               const optional<Tensor>& lengths, bool reverse, bool training,
                               bool bf16) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    auto [out, h_n, c_n, gates, cells] = lstm_forward_op().call(
        gates_x, h0, c0, weight_hh, bias_hh, weight_hr, lengths, reverse, training, bf16);
    ctx->save_for_backward({hidden_states_for_backward(out, training), gates, cells, h0, c0,
                            weight_hh, weight_hr.value_or(Tensor()), lengths.value_or(Tensor())});
    ctx->saved_data["reverse"] = reverse;
    ctx->saved_data["has_bias"] = bias_hh.has_value() && bias_hh->defined();
    ctx->saved_data["training"] = training;
    ctx->saved_data["bf16"] = bf16;  // backward multiplies by W_hh (and W_hr) as forward did
    save_gates_x_dtype(ctx, gates_x);
    ctx->mark_non_differentiable({gates, cells});
    ctx->set_materialize_grads(false);
    return {out, h_n, c_n, gates, cells};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const Tensor &out = saved[0], &gates = saved[1], &cells = saved[2], &h0 = saved[3],
                 &c0 = saved[4], &weight_hh = saved[5], &weight_hr = saved[6];
    TORCH_CHECK(ctx->saved_data["training"].toBool(),
                "rnnkit fused LSTM: forward ran with training=False, so nothing was saved for "
                "backward; pass training=True when gradients are needed");
    check_first_order("LSTM");
    BelowAutograd below_autograd;
    static const auto backward_op = op<LstmBackward>("rnnkit::lstm_backward");
    auto [grad_gates_x, grad_h0, grad_c0, grad_w_hh, grad_b_hh, grad_w_hr] = backward_op.call(
        or_zeros(grads[0], out), or_zeros(grads[1], h0), or_zeros(grads[2], c0), out, gates,
        cells, h0, c0, weight_hh, maybe(weight_hr), maybe(saved[7]),
        ctx->saved_data["reverse"].toBool(), ctx->saved_data["bf16"].toBool());
    const bool has_bias = ctx->saved_data["has_bias"].toBool();
    return {in_dtype_of_gates_x(grad_gates_x, ctx), grad_h0, grad_c0, grad_w_hh, has_bias ? grad_b_hh : Tensor(),
            if_present(weight_hr, grad_w_hr), Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> lstm_forward_autograd(
    const Tensor& gates_x, const Tensor& h0, const Tensor& c0, const Tensor& weight_hh,
    const optional<Tensor>& bias_hh, const optional<Tensor>& weight_hr,
    const optional<Tensor>& lengths, bool reverse, bool training, bool bf16) {
  if (!records_graph(gates_x, h0, c0, weight_hh, bias_hh, weight_hr)) {
    BelowAutograd below_autograd;
    return lstm_forward_op().call(gates_x, h0, c0, weight_hh, bias_hh, weight_hr, lengths, reverse,
                                  training, bf16);
  }
  auto r = LstmFunction::apply(gates_x, h0, c0, weight_hh, bias_hh, weight_hr, lengths, reverse,
                               training, bf16);
  return {r[0], r[1], r[2], r[3], r[4]};
}

// ---- GRU ----------------------------------------------------------------------------------------
using GruForward = std::tuple<Tensor, Tensor, Tensor>(const Tensor&, const Tensor&, const Tensor&,
                                                      const optional<Tensor>&,
                                                      const optional<Tensor>&, bool, bool, bool);
using GruBackward = std::tuple<Tensor, Tensor, Tensor, Tensor>(
    const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
    const optional<Tensor>&, bool, bool);

const c10::TypedOperatorHandle<GruForward>& gru_forward_op() {
  static const auto handle = op<GruForward>("rnnkit::gru_forward");
  return handle;
}

struct GruFunction : torch::autograd::Function<GruFunction> {
  static variable_list forward(AutogradContext* ctx, const Tensor& gates_x, const Tensor& h0,
                               const Tensor& weight_hh, const optional<Tensor>& bias_hh,
                               const optional<Tensor>& lengths, bool reverse, bool training,
                               bool bf16) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    auto [out, h_n, saved] =
        gru_forward_op().call(gates_x, h0, weight_hh, bias_hh, lengths, reverse, training, bf16);
    ctx->save_for_backward({hidden_states_for_backward(out, training), saved, h0, weight_hh,
                            lengths.value_or(Tensor())});
    ctx->saved_data["reverse"] = reverse;
    ctx->saved_data["has_bias"] = bias_hh.has_value() && bias_hh->defined();
    ctx->saved_data["training"] = training;
    ctx->saved_data["bf16"] = bf16;  // backward multiplies by W_hh as forward did
    save_gates_x_dtype(ctx, gates_x);
    ctx->mark_non_differentiable({saved});
    ctx->set_materialize_grads(false);
    return {out, h_n, saved};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto s = ctx->get_saved_variables();
    const Tensor &out = s[0], &saved = s[1], &h0 = s[2];
    TORCH_CHECK(ctx->saved_data["training"].toBool(),
                "rnnkit fused GRU: forward ran with training=False, so nothing was saved for "
                "backward; pass training=True when gradients are needed");
    check_first_order("GRU");
    BelowAutograd below_autograd;
    static const auto backward_op = op<GruBackward>("rnnkit::gru_backward");
    auto [grad_gates_x, grad_h0, grad_w_hh, grad_b_hh] =
        backward_op.call(or_zeros(grads[0], out), or_zeros(grads[1], h0), out, saved, h0, s[3],
                         maybe(s[4]), ctx->saved_data["reverse"].toBool(),
                         ctx->saved_data["bf16"].toBool());
    const bool has_bias = ctx->saved_data["has_bias"].toBool();
    return {in_dtype_of_gates_x(grad_gates_x, ctx), grad_h0, grad_w_hh, has_bias ? grad_b_hh : Tensor(),
            Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

std::tuple<Tensor, Tensor, Tensor> gru_forward_autograd(const Tensor& gates_x, const Tensor& h0,
                                                        const Tensor& weight_hh,
                                                        const optional<Tensor>& bias_hh,
                                                        const optional<Tensor>& lengths,
                                                        bool reverse, bool training, bool bf16) {
  if (!records_graph(gates_x, h0, weight_hh, bias_hh)) {
    BelowAutograd below_autograd;
    return gru_forward_op().call(gates_x, h0, weight_hh, bias_hh, lengths, reverse, training, bf16);
  }
  auto r = GruFunction::apply(gates_x, h0, weight_hh, bias_hh, lengths, reverse, training, bf16);
  return {r[0], r[1], r[2]};
}

// ---- Elman --------------------------------------------------------------------------------------
using ElmanForward = std::tuple<Tensor, Tensor>(const Tensor&, const Tensor&, const Tensor&,
                                                const optional<Tensor>&, const optional<Tensor>&,
                                                bool, bool, bool);
using ElmanBackward = std::tuple<Tensor, Tensor, Tensor, Tensor>(
    const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
    const optional<Tensor>&, bool, bool, bool);

const c10::TypedOperatorHandle<ElmanForward>& elman_forward_op() {
  static const auto handle = op<ElmanForward>("rnnkit::elman_forward");
  return handle;
}

struct ElmanFunction : torch::autograd::Function<ElmanFunction> {
  static variable_list forward(AutogradContext* ctx, const Tensor& gates_x, const Tensor& h0,
                               const Tensor& weight_hh, const optional<Tensor>& bias_hh,
                               const optional<Tensor>& lengths, bool reverse, bool relu,
                               bool bf16) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    auto [out, h_n] = elman_forward_op().call(gates_x, h0, weight_hh, bias_hh, lengths, reverse, relu, bf16);
    ctx->save_for_backward({hidden_states_for_backward(out, true), h0, weight_hh,
                            lengths.value_or(Tensor())});
    ctx->saved_data["reverse"] = reverse;
    ctx->saved_data["relu"] = relu;
    ctx->saved_data["bf16"] = bf16;
    save_gates_x_dtype(ctx, gates_x);
    ctx->saved_data["has_bias"] = bias_hh.has_value() && bias_hh->defined();
    ctx->set_materialize_grads(false);
    return {out, h_n};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto s = ctx->get_saved_variables();
    const Tensor &out = s[0], &h0 = s[1];
    check_first_order("RNN");
    BelowAutograd below_autograd;
    static const auto backward_op = op<ElmanBackward>("rnnkit::elman_backward");
    auto [grad_gates_x, grad_h0, grad_w_hh, grad_b_hh] = backward_op.call(
        or_zeros(grads[0], out), or_zeros(grads[1], h0), out, h0, s[2], maybe(s[3]),
        ctx->saved_data["reverse"].toBool(), ctx->saved_data["relu"].toBool(),
        ctx->saved_data["bf16"].toBool());
    const bool has_bias = ctx->saved_data["has_bias"].toBool();
    return {in_dtype_of_gates_x(grad_gates_x, ctx), grad_h0, grad_w_hh, has_bias ? grad_b_hh : Tensor(),
            Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

std::tuple<Tensor, Tensor> elman_forward_autograd(const Tensor& gates_x, const Tensor& h0,
                                                  const Tensor& weight_hh,
                                                  const optional<Tensor>& bias_hh,
                                                  const optional<Tensor>& lengths, bool reverse,
                                                  bool relu, bool bf16) {
  if (!records_graph(gates_x, h0, weight_hh, bias_hh)) {
    BelowAutograd below_autograd;
    return elman_forward_op().call(gates_x, h0, weight_hh, bias_hh, lengths, reverse, relu, bf16);
  }
  auto r = ElmanFunction::apply(gates_x, h0, weight_hh, bias_hh, lengths, reverse, relu, bf16);
  return {r[0], r[1]};
}

// ---- dense products -----------------------------------------------------------------------------
using Matmul = Tensor(const Tensor&, const Tensor&);
using Linear = Tensor(const Tensor&, const Tensor&, const optional<Tensor>&);

Tensor call_matmul(const Tensor& a, const Tensor& b) {
  static const auto matmul_op = op<Matmul>("rnnkit::matmul");
  return matmul_op.call(a, b);
}

struct MatmulFunction : torch::autograd::Function<MatmulFunction> {
  static Tensor forward(AutogradContext* ctx, const Tensor& a, const Tensor& b) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    ctx->save_for_backward({a, b});
    return call_matmul(a, b);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    // A plain backward needs no graph of its own products: skip the autograd layer (each call
    // through it builds a Function only to find that nothing requires grad). With create_graph
    // the products stay differentiable.
    std::optional<BelowAutograd> below_autograd;
    if (!at::GradMode::is_enabled()) below_autograd.emplace();
    const auto s = ctx->get_saved_variables();
    const Tensor& grad = grads[0];
    return {ctx->needs_input_grad(0) ? call_matmul(grad, s[1].t()) : Tensor(),
            ctx->needs_input_grad(1) ? call_matmul(s[0].t(), grad) : Tensor()};
  }
};

const c10::TypedOperatorHandle<Linear>& linear_op() {
  static const auto handle = op<Linear>("rnnkit::linear");
  return handle;
}

// Whether a (T, B, G) gradient can be read as (T B, G) rows in place: contiguous, or with
// evenly spaced rows of unit stride, as the recurrences' gate gradients come (their rows are
// padded, GradientRows in common.h, so that the weight gradient reads their columns fast; a
// copy would undo that, and cost a pass).
bool rows_in_place(const Tensor& dy) {
  if (dy.is_contiguous()) return true;
  return dy.dim() == 3 && dy.sym_stride(2) == 1 && dy.sym_stride(1) >= dy.sym_size(2) &&
         dy.sym_stride(0) == dy.sym_size(1) * dy.sym_stride(1);
}

// y = x W^T + b (x (..., I)): dx = dy W, dW = dy^T x, db = sum over rows of dy.
struct LinearFunction : torch::autograd::Function<LinearFunction> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x, const Tensor& weight,
                        const optional<Tensor>& bias) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    ctx->save_for_backward({x, weight});
    ctx->saved_data["has_bias"] = bias.has_value() && bias->defined();
    return linear_op().call(x, weight, bias);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    std::optional<BelowAutograd> below_autograd;  // as in MatmulFunction::backward
    if (!at::GradMode::is_enabled()) below_autograd.emplace();
    const auto s = ctx->get_saved_variables();
    const Tensor &x = s[0], &weight = s[1];
    // x may be (..., I): the products run on its rows, (N, I), and dy's, (N, G). dy is used in
    // place when its rows are evenly spaced (rows_in_place), else made contiguous: an expanded
    // one (of output.sum()) would take another route through matmul than the materialized one
    // AOT autograd passes, and round differently.
    // Sizes stay symbolic (sym_sizes, *_symint): under torch.compile with dynamic shapes a
    // plain sizes() would fix T and B in the traced backward, one graph per shape.
    const Tensor dy = rows_in_place(grads[0]) ? grads[0] : grads[0].contiguous();
    const Tensor grad = dy.view_symint({c10::SymInt(-1), dy.sym_size(-1)});
    // needs_input_grad counts tensor inputs only: x, weight, then bias when present.
    const bool bias_grad = ctx->saved_data["has_bias"].toBool() && ctx->needs_input_grad(2);
    Tensor grad_x;
    if (ctx->needs_input_grad(0)) grad_x = call_matmul(grad, weight).view_symint(x.sym_sizes());
    Tensor grad_weight;
    if (ctx->needs_input_grad(1)) {
      grad_weight = call_matmul(grad.t(), x.reshape_symint({c10::SymInt(-1), x.sym_size(-1)}));
    }
    return {grad_x, grad_weight, bias_grad ? grad.sum(0) : Tensor()};
  }
};

Tensor matmul_autograd(const Tensor& a, const Tensor& b) {
  if (!records_graph(a, b)) {
    BelowAutograd below_autograd;
    return call_matmul(a, b);
  }
  return MatmulFunction::apply(a, b);
}

Tensor linear_autograd(const Tensor& x, const Tensor& weight, const optional<Tensor>& bias) {
  if (!records_graph(x, weight, bias)) {
    BelowAutograd below_autograd;
    return linear_op().call(x, weight, bias);
  }
  return LinearFunction::apply(x, weight, bias);
}

}  // namespace
}  // namespace rnnkit

TORCH_LIBRARY_IMPL(rnnkit, Autograd, m) {
  m.impl("lstm_forward", &rnnkit::lstm_forward_autograd);
  m.impl("gru_forward", &rnnkit::gru_forward_autograd);
  m.impl("elman_forward", &rnnkit::elman_forward_autograd);
  m.impl("matmul", &rnnkit::matmul_autograd);
  m.impl("linear", &rnnkit::linear_autograd);
}
