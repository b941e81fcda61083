// Streaming steps: one time step for a small batch, called from Python with ~0.2 us overhead.
//
// A CPython extension type. A Stepper packs a cell's weights once at construction and then
// advances state buffers that Python owns (torch tensors) in place. step(x) checks x in C++
// (dtype, device, shape, contiguity: nanoseconds, where the same checks in Python cost ~1 us)
// and returns the state tensor h. Math per cell as in lstm.cpp, gru.cpp and elman.cpp.
#include <Python.h>
#include <torch/csrc/autograd/python_variable.h>

#include <cstring>
#include <vector>

#include "activations.h"
#include "gemm.h"

namespace rnnkit {

enum Kind { kLSTM = 0, kGRU = 1, kTanh = 2, kReLU = 3 };

struct Stepper {
  int kind;
  int64_t B, I, H, P, G;
  PackedMatrix<float> w_x, w_h, w_r;  // x -> G, h -> G, m -> P (projection)
  std::vector<float> bias_x, bias_h, pre_x, pre_h, m, projected;
  float* h;  // (B, P) state owned by Python
  float* c;  // (B, H) LSTM cell, owned by Python

  void step(const float* x) {
    if (kind == kGRU) {
      for (int64_t b = 0; b < B; ++b) {
        std::memcpy(pre_x.data() + b * G, bias_x.data(), G * sizeof(float));
        std::memcpy(pre_h.data() + b * G, bias_h.data(), G * sizeof(float));
      }
      gemm_accumulate(B, x, I, w_x, pre_x.data(), G, 0, w_x.panels);
      gemm_accumulate(B, h, H, w_h, pre_h.data(), G, 0, w_h.panels);
      for (int64_t b = 0; b < B; ++b) {
        float* gx = pre_x.data() + b * G;
        const float* gh = pre_h.data() + b * G;
        for (int64_t j = 0; j < 2 * H; ++j) gx[j] += gh[j];
        sigmoid_array(gx, gx, 2 * H);  // r | z
        for (int64_t u = 0; u < H; ++u) gx[2 * H + u] += gx[u] * gh[2 * H + u];
        tanh_array(gx + 2 * H, gx + 2 * H, H);  // n
        float* hb = h + b * H;
        for (int64_t u = 0; u < H; ++u) hb[u] = gx[2 * H + u] + gx[H + u] * (hb[u] - gx[2 * H + u]);
      }
      return;
    }
    for (int64_t b = 0; b < B; ++b) std::memcpy(pre_x.data() + b * G, bias_x.data(), G * sizeof(float));
    gemm_accumulate(B, x, I, w_x, pre_x.data(), G, 0, w_x.panels);
    gemm_accumulate(B, h, P, w_h, pre_x.data(), G, 0, w_h.panels);
    if (kind == kTanh || kind == kReLU) {
      for (int64_t b = 0; b < B; ++b) {
        float* row = pre_x.data() + b * G;
        if (kind == kTanh) tanh_array(h + b * H, row, H);
        else for (int64_t u = 0; u < H; ++u) h[b * H + u] = row[u] > 0.f ? row[u] : 0.f;
      }
      return;
    }
    for (int64_t b = 0; b < B; ++b) {
      float* g = pre_x.data() + b * G;
      sigmoid_array(g, g, 2 * H);
      tanh_array(g + 2 * H, g + 2 * H, H);
      sigmoid_array(g + 3 * H, g + 3 * H, H);
      float* cb = c + b * H;
      for (int64_t u = 0; u < H; ++u) cb[u] = g[H + u] * cb[u] + g[u] * g[2 * H + u];
      float* mb = P == H ? h + b * H : m.data() + b * H;
      tanh_array(mb, cb, H);
      for (int64_t u = 0; u < H; ++u) mb[u] *= g[3 * H + u];
    }
    if (P != H) {
      std::fill(projected.begin(), projected.end(), 0.f);
      gemm_accumulate(B, m.data(), H, w_r, projected.data(), P, 0, w_r.panels);
      std::memcpy(h, projected.data(), B * P * sizeof(float));
    }
  }
};

}  // namespace rnnkit

namespace {

struct StepperObject {
  PyObject_HEAD
  rnnkit::Stepper* impl;
  PyObject* h_tensor;  // returned by step()
};

const float* as_pointer(unsigned long long address) {
  return reinterpret_cast<const float*>(static_cast<uintptr_t>(address));
}

int stepper_init(StepperObject* self, PyObject* args, PyObject*) {
  int kind;
  long long B, I, H, P;
  unsigned long long w_ih, w_hh, b_ih, b_hh, w_hr, c;
  PyObject* h_tensor;
  if (!PyArg_ParseTuple(args, "iLLLLKKKKKOK", &kind, &B, &I, &H, &P, &w_ih, &w_hh, &b_ih, &b_hh,
                        &w_hr, &h_tensor, &c))
    return -1;
  if (!THPVariable_Check(h_tensor)) {
    PyErr_SetString(PyExc_TypeError, "h must be a torch.Tensor");
    return -1;
  }
  const unsigned long long h = reinterpret_cast<uintptr_t>(THPVariable_Unpack(h_tensor).data_ptr());
  auto* s = new rnnkit::Stepper();
  s->kind = kind;
  s->B = B, s->I = I, s->H = H, s->P = P;
  s->G = H * (kind == rnnkit::kLSTM ? 4 : kind == rnnkit::kGRU ? 3 : 1);
  const int64_t G = s->G;
  // W_ih is (G, I) row-major: element (k = i, n = g) at g * I + i. Likewise W_hh (G, P), W_hr (P, H).
  s->w_x.pack(as_pointer(w_ih), I, G, 1, I);
  s->w_h.pack(as_pointer(w_hh), P, G, 1, P);
  if (w_hr) s->w_r.pack(as_pointer(w_hr), H, P, 1, H);
  s->bias_x.assign(G, 0.f);
  s->bias_h.assign(G, 0.f);
  for (int64_t j = 0; j < G; ++j) {
    const float bx = b_ih ? as_pointer(b_ih)[j] : 0.f, bh = b_hh ? as_pointer(b_hh)[j] : 0.f;
    if (kind == rnnkit::kGRU) {  // the n gate needs the recurrent bias on its own
      s->bias_x[j] = bx;
      s->bias_h[j] = bh;
    } else {
      s->bias_x[j] = bx + bh;
    }
  }
  s->pre_x.assign(B * G, 0.f);
  s->pre_h.assign(kind == rnnkit::kGRU ? B * G : 0, 0.f);
  s->m.assign(B * H, 0.f);
  s->projected.assign(B * P, 0.f);
  s->h = const_cast<float*>(as_pointer(h));
  s->c = const_cast<float*>(as_pointer(c));
  delete self->impl;
  self->impl = s;
  Py_INCREF(h_tensor);
  Py_XDECREF(self->h_tensor);
  self->h_tensor = h_tensor;
  return 0;
}

void stepper_dealloc(StepperObject* self) {
  delete self->impl;
  Py_XDECREF(self->h_tensor);
  Py_TYPE(self)->tp_free(reinterpret_cast<PyObject*>(self));
}

PyObject* stepper_step(StepperObject* self, PyObject* x_object) {
  if (!THPVariable_Check(x_object)) {
    PyErr_Format(PyExc_TypeError, "x must be a torch.Tensor; got %s", Py_TYPE(x_object)->tp_name);
    return nullptr;
  }
  const at::Tensor& x = THPVariable_Unpack(x_object);
  const rnnkit::Stepper& s = *self->impl;
  if (x.scalar_type() != at::kFloat || !x.device().is_cpu() || x.dim() != 2 || x.size(0) != s.B ||
      x.size(1) != s.I || !x.is_contiguous()) {
    const std::string got = std::string(c10::toString(x.scalar_type())) + " on " +
                            x.device().str() + " of shape " + c10::str(x.sizes()) +
                            (x.is_contiguous() ? "" : " (not contiguous: use x.contiguous())");
    PyErr_Format(PyExc_ValueError,
                 "x must be a contiguous float32 CPU tensor of shape (%lld, %lld); got %s",
                 (long long)s.B, (long long)s.I, got.c_str());
    return nullptr;
  }
  self->impl->step(x.data_ptr<float>());
  Py_INCREF(self->h_tensor);
  return self->h_tensor;
}

PyMethodDef stepper_methods[] = {
    {"step", reinterpret_cast<PyCFunction>(stepper_step), METH_O,
     "step(x): advance the state by one step of x (B, I); returns the state tensor h"},
    {nullptr, nullptr, 0, nullptr}};

PyTypeObject StepperType = {PyVarObject_HEAD_INIT(nullptr, 0)};

PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "rnnkit_stream", "rnnkit streaming steps", -1,
                          nullptr};

}  // namespace

#define RNNKIT_CONCAT_(a, b) a##b
#define RNNKIT_CONCAT(a, b) RNNKIT_CONCAT_(a, b)

PyMODINIT_FUNC RNNKIT_CONCAT(PyInit_, TORCH_EXTENSION_NAME)(void) {
  StepperType.tp_name = "rnnkit_stream.Stepper";
  StepperType.tp_basicsize = sizeof(StepperObject);
  StepperType.tp_flags = Py_TPFLAGS_DEFAULT;
  StepperType.tp_new = PyType_GenericNew;
  StepperType.tp_init = reinterpret_cast<initproc>(stepper_init);
  StepperType.tp_dealloc = reinterpret_cast<destructor>(stepper_dealloc);
  StepperType.tp_methods = stepper_methods;
  if (PyType_Ready(&StepperType) < 0) return nullptr;
  PyObject* module = PyModule_Create(&module_def);
  if (!module) return nullptr;
  Py_INCREF(&StepperType);
  PyModule_AddObject(module, "Stepper", reinterpret_cast<PyObject*>(&StepperType));
  return module;
}
