"""Which code runs the fused backend's large dense products (see ``csrc/dense.h``).

Around each recurrence sit three products over all T x B rows: the input projection
``x W_ih^T + b``, its input gradient ``dG W_ih`` and the weight gradients ``dG^T x``. Two engines
can run them:

* ``"packed"``: rnnkit's packed GEMM (``csrc/gemm.h``), with oneDNN for the shapes it does not
  take. The choice on AMD CPUs, where MKL takes its AVX2 path.
* ``"mkl"``: ``at::mm``, i.e. MKL, for all but projections from at most 128 inputs with a
  weight no larger than x. The choice on Intel CPUs with AVX-512, where MKL runs its AVX-512
  kernels and was 1.05-2x ahead of the packed GEMM on the others.

The default (``"auto"``) applies that host rule. Both engines compute the same products to
float rounding; only the speed differs. The recurrent products inside the time loop always
run on the packed GEMM.
"""

from __future__ import annotations

from .build import loaded_ops as _ops

ENGINES = ("auto", "packed", "mkl")


def dense_engine() -> str:
    """The engine in use now: ``"packed"`` or ``"mkl"``."""
    return str(_ops().dense_engine())


def host_dense_engine() -> str:
    """The engine the host rule picks here (what ``"auto"`` means on this CPU)."""
    return str(_ops().host_dense_engine())


def set_dense_engine(name: str) -> None:
    """Run the large dense products on ``name``: ``"packed"``, ``"mkl"`` or ``"auto"`` (the
    host rule). The setting holds for the whole process."""
    if name not in ENGINES:
        raise ValueError(f"unknown dense engine {name!r}; use one of {', '.join(ENGINES)}")
    _ops().set_dense_engine(name)
