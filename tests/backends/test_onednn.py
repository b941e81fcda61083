"""Float32 LSTM inference on oneDNN's LSTM (rnnkit.backends.onednn) where it is faster than the
fused kernels. Oracles: torch.nn.LSTM, which runs the same primitive (so equality is exact),
and the fused kernels (``backend="fused"``) where the route must not be taken."""

from __future__ import annotations

import os
import platform

import pytest
import torch

import rnnkit
from rnnkit.backends import BACKENDS, onednn
from rnnkit.backends.onednn import (INFERENCE_MANY_ROWS_ONE_THREAD_INTEL, INFERENCE_MIN_HIDDEN,
                                    INFERENCE_MIN_HIDDEN_ONE_THREAD_INTEL,
                                    INFERENCE_MIN_HIDDEN_ONE_THREAD_INTEL_MANY_ROWS,
                                    INFERENCE_MIN_ROWS_PER_THREAD_INTEL,
                                    INFERENCE_MIN_ROWS_PER_THREAD_OTHER,
                                    INFERENCE_MIN_STEPS_ONE_THREAD,
                                    INFERENCE_MIN_STEPS_OTHER, cpu_is_intel,
                                    inference_min_hidden, inference_min_rows_per_thread)

fused_reason = BACKENDS["fused"].unavailable()
pytestmark = pytest.mark.skipif(
    fused_reason is not None or not torch.backends.mkldnn.is_available(),
    reason=f"needs the fused kernels ({fused_reason}) and a torch with oneDNN")

H = INFERENCE_MIN_HIDDEN
B = inference_min_rows_per_thread() * torch.get_num_threads()
T = INFERENCE_MIN_STEPS_ONE_THREAD  # the route runs at this size on this thread count


def pair(hidden=H, **options):
    torch.manual_seed(0)
    reference = torch.nn.LSTM(24, hidden, **options)
    layer = rnnkit.LSTM(24, hidden, **options)
    layer.load_state_dict(reference.state_dict())
    return layer, reference


@pytest.mark.parametrize("options", [
    {}, {"batch_first": True}, {"bidirectional": True, "num_layers": 2},
    {"bias": False}, {"batch_first": True, "bidirectional": True}])
def test_inference_is_torch_nn_lstm_exactly(options):
    # The fused kernels sum in another order (~5e-7 apart): exact equality means the route ran.
    layer, reference = pair(**options)
    directions = 2 if options.get("bidirectional") else 1
    x = torch.randn(B, T, 24) if options.get("batch_first") else torch.randn(T, B, 24)
    state = tuple(torch.randn(directions * options.get("num_layers", 1), B, H) for _ in "hc")
    with torch.no_grad():
        got, (h, c) = layer(x, state)
        expected, (h_ref, c_ref) = reference(x, state)
    assert torch.equal(got, expected) and torch.equal(h, h_ref) and torch.equal(c, c_ref)
    with torch.inference_mode():
        assert torch.equal(layer(x, state)[0], expected)


def _fused_twin(layer):
    twin = rnnkit.LSTM(layer.input_size, layer.hidden_size, proj_size=layer.proj_size,
                       backend="fused")
    twin.load_state_dict(layer.state_dict())
    return twin


@pytest.mark.parametrize("case", ["lengths", "proj_size", "few rows", "narrow", "gradients",
                                  "oneDNN off", "short on one thread"])
def test_calls_it_cannot_run_or_that_it_does_not_speed_up_stay_on_the_fused_kernels(
        case, monkeypatch):
    narrowest = inference_min_hidden(torch.get_num_threads(), B)
    layer, _ = pair(hidden=narrowest - 1 if case == "narrow" else H,
                    **({"proj_size": 5} if case == "proj_size" else {}))
    fused = _fused_twin(layer)
    rows = B - 1 if case == "few rows" else B  # one row under the route's threshold
    steps = T - 1 if case == "short on one thread" else T
    if case == "short on one thread":
        monkeypatch.setattr(torch, "get_num_threads", lambda: 1)  # as the route reads it
    x = torch.randn(steps, rows, 24, requires_grad=case == "gradients")
    kwargs = {"lengths": torch.tensor([T, 5] * (rows // 2))} if case == "lengths" else {}
    if case == "oneDNN off":  # then torch.lstm runs torch's own loop, slower than ours
        monkeypatch.setattr(torch.backends.mkldnn, "enabled", False)
    with torch.set_grad_enabled(case == "gradients"):
        got, expected = layer(x, **kwargs)[0], fused(x, **kwargs)[0]
    assert torch.equal(got, expected)


@pytest.mark.parametrize("intel, steps, on_onednn", [
    (False, INFERENCE_MIN_STEPS_OTHER - 1, False),
    (False, INFERENCE_MIN_STEPS_OTHER, True),
    (True, 1, True),
])
def test_short_calls_on_two_threads_take_the_route_on_intel_cpus_only(intel, steps, on_onednn,
                                                                       monkeypatch):
    """On two threads the route takes calls of any length on Intel CPUs; on others, calls of
    fewer than INFERENCE_MIN_STEPS_OTHER steps stay on the fused kernels. Vendor and thread
    count are set as the route reads them. Oracles: torch.nn.LSTM, which the route matches
    exactly, and the fused kernels."""
    monkeypatch.setattr(onednn, "cpu_is_intel", lambda: intel)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    layer, reference = pair()
    rows = 2 * (INFERENCE_MIN_ROWS_PER_THREAD_INTEL if intel else INFERENCE_MIN_ROWS_PER_THREAD_OTHER)
    x = torch.randn(steps, rows, 24)
    with torch.no_grad():
        got, on_onednn_output, fused_output = layer(x)[0], reference(x)[0], _fused_twin(layer)(x)[0]
    assert not torch.equal(on_onednn_output, fused_output)  # the two routes are told apart
    assert torch.equal(got, on_onednn_output if on_onednn else fused_output)


@pytest.mark.parametrize("intel, threads, hidden, rows, on_onednn", [
    (True, 1, INFERENCE_MIN_HIDDEN_ONE_THREAD_INTEL, None, True),
    (True, 1, INFERENCE_MIN_HIDDEN_ONE_THREAD_INTEL - 1, None, False),
    (True, 1, INFERENCE_MIN_HIDDEN_ONE_THREAD_INTEL_MANY_ROWS, INFERENCE_MANY_ROWS_ONE_THREAD_INTEL,
     True),
    (True, 1, INFERENCE_MIN_HIDDEN_ONE_THREAD_INTEL_MANY_ROWS,
     INFERENCE_MANY_ROWS_ONE_THREAD_INTEL - 1, False),
    (True, 1, INFERENCE_MIN_HIDDEN_ONE_THREAD_INTEL_MANY_ROWS - 1,
     INFERENCE_MANY_ROWS_ONE_THREAD_INTEL, False),
    (True, 2, INFERENCE_MIN_HIDDEN_ONE_THREAD_INTEL, None, False),
    (True, 2, INFERENCE_MIN_HIDDEN_ONE_THREAD_INTEL_MANY_ROWS, 2 * INFERENCE_MANY_ROWS_ONE_THREAD_INTEL,
     False),
    (False, 1, INFERENCE_MIN_HIDDEN_ONE_THREAD_INTEL, None, False),
    (False, 1, INFERENCE_MIN_HIDDEN_ONE_THREAD_INTEL_MANY_ROWS, INFERENCE_MANY_ROWS_ONE_THREAD_INTEL,
     False),
    (False, 1, INFERENCE_MIN_HIDDEN, None, True),
])
def test_one_thread_on_intel_takes_the_route_from_a_narrower_state(intel, threads, hidden, rows,
                                                                     on_onednn, monkeypatch):
    """With one thread on an Intel CPU the route starts at H = 160, and at H = 128 from 32
    rows; elsewhere at H = 256 (vendor and thread count set as the route reads them; rows None:
    the fewest the route takes). Oracles: torch.nn.LSTM, which the route matches exactly, and
    the fused kernels."""
    monkeypatch.setattr(onednn, "cpu_is_intel", lambda: intel)
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    layer, reference = pair(hidden=hidden)
    if rows is None:
        rows = threads * (INFERENCE_MIN_ROWS_PER_THREAD_INTEL if intel
                          else INFERENCE_MIN_ROWS_PER_THREAD_OTHER)
    x = torch.randn(INFERENCE_MIN_STEPS_ONE_THREAD, rows, 24)
    with torch.no_grad():
        got, on_onednn_output, fused_output = layer(x)[0], reference(x)[0], _fused_twin(layer)(x)[0]
    assert not torch.equal(on_onednn_output, fused_output)  # the two routes are told apart
    assert torch.equal(got, on_onednn_output if on_onednn else fused_output)


def test_the_route_and_the_kernels_plans_read_the_same_vendor():
    """The route's row threshold and the fused kernels' plans (csrc/unit_team.h: units over
    rows) follow one vendor reading, the kernels' cpuid, so both rules are those of one measured
    host: Intel's 12 rows per thread with the units plan up to 4 rows (16 past L2), or the
    others' 8 with 2 (3). Oracle for the vendor: /proc/cpuinfo, read here independently."""
    intel = bool(torch.ops.rnnkit.cpu_is_intel())
    assert cpu_is_intel() == intel
    limits = list(torch.ops.rnnkit.units_over_rows_limits())
    if intel:
        assert (inference_min_rows_per_thread(), limits) == (INFERENCE_MIN_ROWS_PER_THREAD_INTEL,
                                                             [4, 16])
    else:
        assert (inference_min_rows_per_thread(), limits) == (INFERENCE_MIN_ROWS_PER_THREAD_OTHER,
                                                             [2, 3])
    if os.path.exists("/proc/cpuinfo") and platform.machine() in ("x86_64", "AMD64", "i686"):
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            assert intel == ("GenuineIntel" in info.read())


def test_backend_fused_keeps_the_fused_kernels():
    layer, reference = pair()
    fused = _fused_twin(layer)
    x = torch.randn(T, B, 24)
    with torch.no_grad():
        got, on_onednn = fused(x)[0], reference(x)[0]
    torch.testing.assert_close(got, on_onednn, rtol=1e-5, atol=1e-5)  # close, yet its own sum
    assert not torch.equal(got, on_onednn)


def test_inference_agrees_with_a_training_call():
    # Training runs on the fused kernels: the two routes compute the same function.
    layer, _ = pair(bidirectional=True)
    x = torch.randn(20, B, 24)
    trained = layer(x)[0]
    with torch.no_grad():
        inferred = layer(x)[0]
    torch.testing.assert_close(inferred, trained.detach(), rtol=1e-5, atol=1e-5)
