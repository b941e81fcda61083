// Streaming steps: one time step for a small batch, called from Python with ~0.2 us overhead.
//
// A CPython extension module with two types. A Stepper packs one cell's weights once at
// construction and then advances state buffers that Python owns (torch tensors) in place. step(x)
// checks x in C++ (dtype, device, shape, contiguity: nanoseconds, where the same checks in Python
// cost ~1 us) and returns the state tensor h. The cell math is CellKernel (cell_kernel.h); the
// Session type (a whole model, many streams) is in session.cpp.
#include <Python.h>
#include <torch/csrc/autograd/python_variable.h>

#include <memory>

#include "cell_kernel.h"

namespace rnnkit {
int register_session_type(PyObject* module);  // session.cpp
}

namespace {

struct Stepper {
  rnnkit::CellKernel kernel;
  int64_t B;
  float* h;  // (B, P) state owned by Python
  float* c;  // (B, H) LSTM cell, owned by Python
};

struct StepperObject {
  PyObject_HEAD
  Stepper* impl;
  PyObject* h_tensor;  // returned by step()
  PyObject* c_tensor;  // the LSTM cell (None otherwise): referenced here, so that a bound
                       // step method kept alone still owns the buffer that impl->c points into
};

const float* as_pointer(unsigned long long address) {
  return reinterpret_cast<const float*>(static_cast<uintptr_t>(address));
}

int stepper_init(StepperObject* self, PyObject* args, PyObject*) {
  int kind;
  long long B, I, H, P;
  unsigned long long w_ih, w_hh, b_ih, b_hh, w_hr;
  PyObject* h_tensor;
  PyObject* c_tensor;
  if (!PyArg_ParseTuple(args, "iLLLLKKKKKOO", &kind, &B, &I, &H, &P, &w_ih, &w_hh, &b_ih, &b_hh,
                        &w_hr, &h_tensor, &c_tensor))
    return -1;
  if (!THPVariable_Check(h_tensor) || (c_tensor != Py_None && !THPVariable_Check(c_tensor))) {
    PyErr_SetString(PyExc_TypeError, "h must be a torch.Tensor and c a torch.Tensor or None");
    return -1;
  }
  float* h = static_cast<float*>(THPVariable_Unpack(h_tensor).data_ptr());
  float* c = c_tensor == Py_None ? nullptr
                                 : static_cast<float*>(THPVariable_Unpack(c_tensor).data_ptr());
  auto* s = new Stepper{
      rnnkit::CellKernel(kind, I, H, P, as_pointer(w_ih), as_pointer(w_hh), as_pointer(b_ih),
                         as_pointer(b_hh), as_pointer(w_hr)),
      B, h, c};
  delete self->impl;
  self->impl = s;
  Py_INCREF(h_tensor);
  Py_XDECREF(self->h_tensor);
  self->h_tensor = h_tensor;
  Py_INCREF(c_tensor);
  Py_XDECREF(self->c_tensor);
  self->c_tensor = c_tensor;
  return 0;
}

void stepper_dealloc(StepperObject* self) {
  delete self->impl;
  Py_XDECREF(self->h_tensor);
  Py_XDECREF(self->c_tensor);
  Py_TYPE(self)->tp_free(reinterpret_cast<PyObject*>(self));
}

PyObject* stepper_step(StepperObject* self, PyObject* x_object) {
  if (!THPVariable_Check(x_object)) {
    PyErr_Format(PyExc_TypeError, "x must be a torch.Tensor; got %s", Py_TYPE(x_object)->tp_name);
    return nullptr;
  }
  if (self->impl == nullptr) {  // Stepper.__new__ without __init__
    PyErr_SetString(PyExc_RuntimeError, "Stepper was not initialized");
    return nullptr;
  }
  const at::Tensor& x = THPVariable_Unpack(x_object);
  Stepper& s = *self->impl;
  if (x.scalar_type() != at::kFloat || !x.device().is_cpu() || x.dim() != 2 || x.size(0) != s.B ||
      x.size(1) != s.kernel.I) {
    const std::string got = std::string(c10::toString(x.scalar_type())) + " on " +
                            x.device().str() + " of shape " + c10::str(x.sizes());
    PyErr_Format(PyExc_ValueError, "x must be a float32 CPU tensor of shape (%lld, %lld); got %s",
                 (long long)s.B, (long long)s.kernel.I, got.c_str());
    return nullptr;
  }
  // A strided view is stepped from a contiguous copy; contiguous input is read in place.
  const at::Tensor packed = x.is_contiguous() ? at::Tensor() : x.contiguous();
  const float* x_data = packed.defined() ? packed.data_ptr<float>() : x.data_ptr<float>();
  s.kernel.step(s.B, x_data, s.kernel.I, s.h, s.kernel.P, s.c, s.kernel.H);
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
  if (rnnkit::register_session_type(module) < 0) return nullptr;
  return module;
}
