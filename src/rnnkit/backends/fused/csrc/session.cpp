// A whole streaming model in one native call: embedding -> recurrent layers -> head, per step.
//
// The Python StreamingSession (rnnkit/runtime/session.py) builds a Session from a StreamingGraph:
// add_layer / add_linear / add_activation in order, then bind() the state arena and the output
// buffer, two float32 tensors that Python owns:
//   state  (capacity, S): one row per stream, every layer's state side by side, [h_0 c_0 h_1 ...]
//   output (capacity, O): the last output of each stream
// step(x, row) advances one stream with no copies of its state (the kernels read and write the
// arena row in place); step_rows() gathers several rows into a small batch, runs them together
// and scatters them back; feed() runs T steps of one stream without returning to Python.
#include <Python.h>
#include <torch/csrc/autograd/python_variable.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cell_kernel.h"

namespace rnnkit {
namespace {

enum Activation { kActReLU = 0, kActTanh = 1, kActSigmoid = 2 };

struct HeadStep {
  bool linear;
  int activation;         // when !linear
  PackedMatrix<float> w;  // (in -> out) when linear
  std::vector<float> bias;
  int64_t out;
};

struct Session {
  int64_t input_width = 0, vocab = 0;  // vocab > 0: inputs are token ids into `embedding`
  std::vector<float> embedding;        // (vocab, input_width)
  std::vector<std::unique_ptr<CellKernel>> layers;
  std::vector<int64_t> h_offset, c_offset;
  std::vector<char> residual;
  std::vector<HeadStep> head;
  int64_t state_width = 0, output_width = 0;
  float* state = nullptr;   // (capacity, state_width), owned by Python
  float* output = nullptr;  // (capacity, output_width), owned by Python
  int64_t capacity = 0;
  std::vector<float> io[2], gathered, looked_up;  // scratch, grown on demand

  float* scratch(int which, int64_t size) {
    if ((int64_t)io[which].size() < size) io[which].resize(size);
    return io[which].data();
  }

  // B rows: inputs x (row stride ldx) or token ids; states at st (row stride lds); y (ldy).
  void run(int64_t B, const float* x, int64_t ldx, const int64_t* tokens, float* st, int64_t lds,
           float* y, int64_t ldy) {
    if (tokens) {
      if (B == 1) {
        x = embedding.data() + tokens[0] * input_width;
      } else {
        looked_up.resize(B * input_width);
        for (int64_t b = 0; b < B; ++b)
          std::memcpy(looked_up.data() + b * input_width, embedding.data() + tokens[b] * input_width,
                      input_width * sizeof(float));
        x = looked_up.data();
      }
      ldx = input_width;
    }
    const float* in = x;
    int64_t ld_in = ldx, width = input_width;
    int which = 0;
    for (size_t l = 0; l < layers.size(); ++l) {
      CellKernel& cell = *layers[l];
      float* h = st + h_offset[l];
      cell.step(B, in, ld_in, h, lds, st + c_offset[l], lds);
      width = cell.P;
      if (residual[l]) {  // the next input is h + this layer's input; h itself stays the state
        float* sum = scratch(which, B * width);
        which ^= 1;
        for (int64_t b = 0; b < B; ++b)
          for (int64_t u = 0; u < width; ++u) sum[b * width + u] = h[b * lds + u] + in[b * ld_in + u];
        in = sum, ld_in = width;
      } else {
        in = h, ld_in = lds;
      }
    }
    for (HeadStep& op : head) {
      // Always into scratch: `in` may be a state row, which an activation must not overwrite.
      const int64_t out_width = op.linear ? op.out : width;
      float* out = scratch(which, B * out_width);
      which ^= 1;
      if (op.linear) {
        for (int64_t b = 0; b < B; ++b) std::memcpy(out + b * out_width, op.bias.data(), out_width * sizeof(float));
        gemm_accumulate(B, in, ld_in, op.w, out, out_width, 0, op.w.panels);
      } else {
        for (int64_t b = 0; b < B; ++b) {
          const float* src = in + b * ld_in;
          float* dst = out + b * out_width;
          if (op.activation == kActTanh) tanh_array(dst, src, width);
          else if (op.activation == kActSigmoid) sigmoid_array(dst, src, width);
          else for (int64_t u = 0; u < width; ++u) dst[u] = src[u] < 0.f ? 0.f : src[u];  // NaN stays
        }
      }
      in = out, ld_in = out_width, width = out_width;
    }
    for (int64_t b = 0; b < B; ++b) std::memcpy(y + b * ldy, in + b * ld_in, width * sizeof(float));
  }
};

struct SessionObject {
  PyObject_HEAD
  Session* impl;
  PyObject* state_tensor;
  PyObject* output_tensor;
};

const float* address(unsigned long long value) {
  return reinterpret_cast<const float*>(static_cast<uintptr_t>(value));
}

std::string describe(const at::Tensor& t) {
  return std::string(c10::toString(t.scalar_type())) + " on " + t.device().str() + " of shape " +
         c10::str(t.sizes()) + (t.is_contiguous() ? "" : " (not contiguous: use .contiguous())");
}

// Borrow a tensor argument; nullptr (with a Python error set) when it is not a tensor.
const at::Tensor* tensor_arg(PyObject* object, const char* name) {
  if (!THPVariable_Check(object)) {
    PyErr_Format(PyExc_TypeError, "%s must be a torch.Tensor; got %s", name, Py_TYPE(object)->tp_name);
    return nullptr;
  }
  return &THPVariable_Unpack(object);
}

bool is_plain(const at::Tensor& t, at::ScalarType type) {
  return t.scalar_type() == type && t.device().is_cpu() && t.is_contiguous();
}

// Token ids must index the embedding table: checked here so no read goes out of bounds.
bool check_tokens(const Session& s, const int64_t* tokens, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= s.vocab) {
      PyErr_Format(PyExc_ValueError, "token id %lld is outside the vocabulary [0, %lld)",
                   (long long)tokens[i], (long long)s.vocab);
      return false;
    }
  }
  return true;
}

// Inputs for n steps or rows: (n, I) float32, or with an embedding n int64 ids. On success sets
// either *x or *tokens.
bool parse_inputs(const Session& s, PyObject* object, int64_t n, const float** x,
                  const int64_t** tokens, const char* expected_format, at::Tensor* packed) {
  const at::Tensor* t = tensor_arg(object, "x");
  if (!t) return false;
  // "%lld rows (one per stream) of" -> "2 rows (one per stream) of": the count the call needs
  char expected[96];
  std::snprintf(expected, sizeof expected, expected_format, (long long)n);
  // A strided view (a column slice, a transpose) is copied into *packed, which the caller
  // keeps alive for the call; contiguous input, the common case, is read in place.
  const auto in_place = [&]() -> const at::Tensor& {
    if (t->is_contiguous()) return *t;
    *packed = t->contiguous();
    return *packed;
  };
  if (s.vocab > 0) {
    if (t->scalar_type() != at::kLong || !t->device().is_cpu() || t->numel() != n) {
      PyErr_Format(PyExc_ValueError, "x must be %s int64 token ids; got %s%s", expected,
                   describe(*t).c_str(),
                   t->scalar_type() != at::kLong ? " (convert it with x.long())" : "");
      return false;
    }
    *tokens = in_place().data_ptr<int64_t>();
    return check_tokens(s, *tokens, n);
  }
  // The last dimension must be the features: a count check alone took a transposed (I, n)
  // batch of n streams, or a (2, 2) tensor as one frame of 4, and read it row by row.
  if (t->scalar_type() != at::kFloat || !t->device().is_cpu() || t->numel() != n * s.input_width ||
      t->dim() == 0 || t->size(-1) != s.input_width) {
    PyErr_Format(PyExc_ValueError, "x must be a float32 CPU tensor of %s %lld features; got %s%s",
                 expected, (long long)s.input_width, describe(*t).c_str(),
                 t->scalar_type() != at::kFloat ? " (convert it with x.float())" : "");
    return false;
  }
  *x = in_place().data_ptr<float>();
  return true;
}

bool check_row(const Session& s, long long row) {
  if (row < 0 || row >= s.capacity) {
    PyErr_Format(PyExc_IndexError, "row %lld outside the state arena of %lld rows", row, (long long)s.capacity);
    return false;
  }
  return true;
}

int session_init(SessionObject* self, PyObject* args, PyObject*) {
  long long input_width, vocab;
  unsigned long long table;
  if (!PyArg_ParseTuple(args, "LLK", &input_width, &vocab, &table)) return -1;
  auto* s = new Session();
  s->input_width = input_width;
  s->vocab = vocab;
  if (vocab > 0) s->embedding.assign(address(table), address(table) + vocab * input_width);
  delete self->impl;
  self->impl = s;
  return 0;
}

void session_dealloc(SessionObject* self) {
  delete self->impl;
  Py_XDECREF(self->state_tensor);
  Py_XDECREF(self->output_tensor);
  Py_TYPE(self)->tp_free(reinterpret_cast<PyObject*>(self));
}

// add_layer(kind, I, H, P, w_ih, w_hh, b_ih, b_hh, w_hr, residual): weight addresses, 0 = none.
PyObject* session_add_layer(SessionObject* self, PyObject* args) {
  int kind, residual;
  long long I, H, P;
  unsigned long long w_ih, w_hh, b_ih, b_hh, w_hr;
  if (!PyArg_ParseTuple(args, "iLLLKKKKKp", &kind, &I, &H, &P, &w_ih, &w_hh, &b_ih, &b_hh, &w_hr, &residual))
    return nullptr;
  Session& s = *self->impl;
  s.layers.emplace_back(new CellKernel(kind, I, H, P, address(w_ih), address(w_hh), address(b_ih),
                                       address(b_hh), address(w_hr)));
  s.h_offset.push_back(s.state_width);
  s.state_width += P;
  s.c_offset.push_back(s.state_width);  // only read by an LSTM
  if (kind == kLSTM) s.state_width += H;
  s.residual.push_back((char)residual);
  s.output_width = P;
  Py_RETURN_NONE;
}

// add_linear(in, out, weight (out, in), bias or 0)
PyObject* session_add_linear(SessionObject* self, PyObject* args) {
  long long in, out;
  unsigned long long w, b;
  if (!PyArg_ParseTuple(args, "LLKK", &in, &out, &w, &b)) return nullptr;
  Session& s = *self->impl;
  HeadStep op{true, 0, {}, std::vector<float>(out, 0.f), out};
  op.w.pack(address(w), in, out, 1, in);
  if (b) std::memcpy(op.bias.data(), address(b), out * sizeof(float));
  s.head.push_back(std::move(op));
  s.output_width = out;
  Py_RETURN_NONE;
}

PyObject* session_add_activation(SessionObject* self, PyObject* code) {
  const long value = PyLong_AsLong(code);
  if (value == -1 && PyErr_Occurred()) return nullptr;
  self->impl->head.push_back(HeadStep{false, (int)value, {}, {}, 0});
  Py_RETURN_NONE;
}

// bind(state (capacity, S), output (capacity, O)): the buffers every later call reads and writes.
PyObject* session_bind(SessionObject* self, PyObject* args) {
  PyObject *state_object, *output_object;
  if (!PyArg_ParseTuple(args, "OO", &state_object, &output_object)) return nullptr;
  const at::Tensor* state = tensor_arg(state_object, "state");
  const at::Tensor* output = state ? tensor_arg(output_object, "output") : nullptr;
  if (!output) return nullptr;
  Session& s = *self->impl;
  if (!is_plain(*state, at::kFloat) || state->dim() != 2 || state->size(1) != s.state_width ||
      !is_plain(*output, at::kFloat) || output->dim() != 2 || output->size(1) != s.output_width ||
      output->size(0) != state->size(0)) {
    PyErr_Format(PyExc_ValueError, "bind needs float32 (N, %lld) state and (N, %lld) output; got %s and %s",
                 (long long)s.state_width, (long long)s.output_width, describe(*state).c_str(),
                 describe(*output).c_str());
    return nullptr;
  }
  s.state = state->data_ptr<float>();
  s.output = output->data_ptr<float>();
  s.capacity = state->size(0);
  Py_INCREF(state_object);
  Py_INCREF(output_object);
  Py_XDECREF(self->state_tensor);
  Py_XDECREF(self->output_tensor);
  self->state_tensor = state_object;
  self->output_tensor = output_object;
  Py_RETURN_NONE;
}

// step(x, row): one step of the stream in arena row `row`; its output goes to output[row].
// x: (I,) float32 features, or a Python int token id with an embedding.
PyObject* session_step(SessionObject* self, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2) {
    PyErr_SetString(PyExc_TypeError, "step(x, row) takes 2 arguments");
    return nullptr;
  }
  Session& s = *self->impl;
  const long long row = PyLong_AsLongLong(args[1]);
  if ((row == -1 && PyErr_Occurred()) || !check_row(s, row)) return nullptr;
  const float* x = nullptr;
  const int64_t* tokens = nullptr;
  at::Tensor packed;  // a contiguous copy of a strided x, alive until the steps are done
  int64_t token;
  // A token id: a Python or NumPy integer (np.argmax gives the latter); not a bool, which
  // PyLong_Check would pass as 0 or 1. Tensors, which also have __index__, take the path below.
  if (s.vocab > 0 && PyBool_Check(args[0])) {
    PyErr_SetString(PyExc_TypeError, "a token id must be an int; got bool");
    return nullptr;
  }
  if (s.vocab > 0 && !THPVariable_Check(args[0]) && PyIndex_Check(args[0])) {
    token = PyNumber_AsSsize_t(args[0], PyExc_OverflowError);
    if (token == -1 && PyErr_Occurred()) return nullptr;
    if (!check_tokens(s, &token, 1)) return nullptr;
    tokens = &token;
  } else if (!parse_inputs(s, args[0], 1, &x, &tokens, "one step of", &packed)) {
    return nullptr;
  }
  s.run(1, x, s.input_width, tokens, s.state + row * s.state_width, s.state_width,
        s.output + row * s.output_width, s.output_width);
  Py_RETURN_NONE;
}

// feed(x, row, y): T steps of one stream; x (T, I) float32 or (T,) int64; y (T, O) float32.
PyObject* session_feed(SessionObject* self, PyObject* args) {
  PyObject *x_object, *y_object;
  long long row;
  if (!PyArg_ParseTuple(args, "OLO", &x_object, &row, &y_object)) return nullptr;
  Session& s = *self->impl;
  const at::Tensor* y = check_row(s, row) ? tensor_arg(y_object, "y") : nullptr;
  if (!y) return nullptr;
  const int64_t T = y->dim() == 2 ? y->size(0) : -1;
  if (!is_plain(*y, at::kFloat) || T < 0 || y->size(1) != s.output_width) {
    PyErr_Format(PyExc_ValueError, "y must be float32 (T, %lld); got %s", (long long)s.output_width,
                 describe(*y).c_str());
    return nullptr;
  }
  const float* x = nullptr;
  const int64_t* tokens = nullptr;
  at::Tensor packed;  // a contiguous copy of a strided x, alive until the steps are done
  if (!parse_inputs(s, x_object, T, &x, &tokens, "%lld steps of", &packed)) return nullptr;
  float* state_row = s.state + row * s.state_width;
  float* out = y->data_ptr<float>();
  for (int64_t t = 0; t < T; ++t)
    s.run(1, x ? x + t * s.input_width : nullptr, s.input_width, tokens ? tokens + t : nullptr,
          state_row, s.state_width, out + t * s.output_width, s.output_width);
  if (T > 0) std::memcpy(s.output + row * s.output_width, out + (T - 1) * s.output_width,
                         s.output_width * sizeof(float));
  Py_RETURN_NONE;
}

// step_rows(x, rows, y): one step of n streams at once; rows (n,) int64 distinct arena rows.
PyObject* session_step_rows(SessionObject* self, PyObject* args) {
  PyObject *x_object, *rows_object, *y_object;
  if (!PyArg_ParseTuple(args, "OOO", &x_object, &rows_object, &y_object)) return nullptr;
  Session& s = *self->impl;
  const at::Tensor* rows = tensor_arg(rows_object, "rows");
  const at::Tensor* y = rows ? tensor_arg(y_object, "y") : nullptr;
  if (!y) return nullptr;
  const int64_t n = rows->numel();
  if (!is_plain(*rows, at::kLong) || !is_plain(*y, at::kFloat) || y->numel() != n * s.output_width) {
    PyErr_Format(PyExc_ValueError, "step_rows needs int64 rows (n,) and float32 y (n, %lld); got %s and %s",
                 (long long)s.output_width, describe(*rows).c_str(), describe(*y).c_str());
    return nullptr;
  }
  const int64_t* row = rows->data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i)
    if (!check_row(s, row[i])) return nullptr;
  const float* x = nullptr;
  const int64_t* tokens = nullptr;
  at::Tensor packed;  // a contiguous copy of a strided x, alive until the steps are done
  if (!parse_inputs(s, x_object, n, &x, &tokens, "%lld rows (one per stream) of", &packed)) return nullptr;
  const int64_t S = s.state_width, O = s.output_width;
  s.gathered.resize(n * S);
  for (int64_t i = 0; i < n; ++i) std::memcpy(s.gathered.data() + i * S, s.state + row[i] * S, S * sizeof(float));
  float* out = y->data_ptr<float>();
  s.run(n, x, s.input_width, tokens, s.gathered.data(), S, out, O);
  for (int64_t i = 0; i < n; ++i) {
    std::memcpy(s.state + row[i] * S, s.gathered.data() + i * S, S * sizeof(float));
    std::memcpy(s.output + row[i] * O, out + i * O, O * sizeof(float));
  }
  Py_RETURN_NONE;
}

PyObject* session_widths(SessionObject* self, PyObject*) {
  return Py_BuildValue("LL", (long long)self->impl->state_width, (long long)self->impl->output_width);
}

PyMethodDef session_methods[] = {
    {"add_layer", reinterpret_cast<PyCFunction>(session_add_layer), METH_VARARGS, "append a recurrent layer"},
    {"add_linear", reinterpret_cast<PyCFunction>(session_add_linear), METH_VARARGS, "append a linear head op"},
    {"add_activation", reinterpret_cast<PyCFunction>(session_add_activation), METH_O,
     "append an activation (0 relu, 1 tanh, 2 sigmoid)"},
    {"bind", reinterpret_cast<PyCFunction>(session_bind), METH_VARARGS, "bind(state, output) buffers"},
    {"step", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(session_step)), METH_FASTCALL,
     "step(x, row): one step of one stream"},
    {"feed", reinterpret_cast<PyCFunction>(session_feed), METH_VARARGS, "feed(x, row, y): T steps of one stream"},
    {"step_rows", reinterpret_cast<PyCFunction>(session_step_rows), METH_VARARGS,
     "step_rows(x, rows, y): one step of several streams"},
    {"widths", reinterpret_cast<PyCFunction>(session_widths), METH_NOARGS, "(state width S, output width O)"},
    {nullptr, nullptr, 0, nullptr}};

PyTypeObject SessionType = {PyVarObject_HEAD_INIT(nullptr, 0)};

}  // namespace

int register_session_type(PyObject* module) {
  SessionType.tp_name = "rnnkit_stream.Session";
  SessionType.tp_basicsize = sizeof(SessionObject);
  SessionType.tp_flags = Py_TPFLAGS_DEFAULT;
  SessionType.tp_new = PyType_GenericNew;
  SessionType.tp_init = reinterpret_cast<initproc>(session_init);
  SessionType.tp_dealloc = reinterpret_cast<destructor>(session_dealloc);
  SessionType.tp_methods = session_methods;
  if (PyType_Ready(&SessionType) < 0) return -1;
  Py_INCREF(&SessionType);
  return PyModule_AddObject(module, "Session", reinterpret_cast<PyObject*>(&SessionType));
}

}  // namespace rnnkit
