"""Dynamic evaluation: a language model that keeps learning from the text it has just scored.

Krause et al. (2018) adapt the weights to the recent history at evaluation time: each window
of T characters is first scored (that score is what is reported), and only then used for one
gradient step, so the model never sees a character before predicting it. Adaptive compressors
(zlib, bzip2, xz, PPM) work the same way, which makes this the like-for-like comparison with
their bars; the static score (:func:`~rnnkit.tasks.lm.task.bits_per_character`) is the
model's own number. Two update rules, both pulled back towards the trained weights:

    "sgd":  theta <- theta - lr * g + decay * (theta_trained - theta)
    "rms":  v <- beta v + (1 - beta) g^2,   theta <- theta - lr * g / (sqrt(v / (1 - beta^k)) + eps)
            + decay * (theta_trained - theta)

with g the gradient of the window's mean loss and k the number of updates so far. "rms"
scales each weight's step by its own gradient size (Krause et al. normalize by gradient
statistics too, gathered on training text; here they come from the scored text itself, so
nothing but the model is needed). Measured on the King James validation split, one row,
windows of 64 (``docs/decisions/lm-defaults.md``): static 1.711 bpc, "sgd" lr 0.3 1.539,
"rms" lr 3e-4 1.530.
"""

from __future__ import annotations

import copy
import math

import torch
from torch.nn import functional as F

from rnnkit.training import detach_state
from rnnkit.training.metrics import perplexity_of_bits

from .model import CharLanguageModel


RULES = ("sgd", "rms")


def dynamic_bits_per_character(model: CharLanguageModel, tokens: torch.Tensor, *, rows: int,
                               window: int = 64, lr: float = 0.01, decay: float = 0.0,
                               rule: str = "sgd", beta: float = 0.99,
                               device: str = "cpu") -> dict:
    """Score ``tokens`` (N,) while adapting a copy of ``model``; ``model`` itself is unchanged.

    The stream is read as ``rows`` side-by-side rows, ``window`` characters at a time, as in
    training (one row adapts most: every update follows the text just read). Returns ``loss``
    (nats), ``bpc``, ``perplexity``, ``characters`` and the settings under ``dynamic``.
    """
    if lr < 0 or decay < 0:
        raise ValueError(f"lr and decay must be >= 0; got {lr} and {decay}")
    if rule not in RULES:
        raise ValueError(f"dynamic evaluation rule must be one of {RULES}; got {rule!r}")
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1); got {beta}")
    adapted = copy.deepcopy(model).to(device).eval()  # eval: no dropout while adapting
    trained = [p.detach().clone() for p in adapted.parameters()]
    mean_squares = [torch.zeros_like(p) for p in trained]
    updates = 0
    rows = max(1, min(rows, tokens.numel() // 2))
    columns = tokens.numel() // rows
    stream = tokens[: rows * columns].reshape(rows, columns).to(device)
    total_nats, count, state = 0.0, 0, None
    for start in range(0, columns - 1, window):
        stop = min(start + window, columns - 1)
        logits, state = adapted(stream[:, start:stop], state)
        targets = stream[:, start + 1: stop + 1]
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1),
                               reduction="sum")
        total_nats += loss.item()  # scored before the model learns from this window
        count += targets.numel()
        adapted.zero_grad(set_to_none=True)
        (loss / targets.numel()).backward()
        updates += 1
        with torch.no_grad():
            for parameter, anchor, mean_square in zip(adapted.parameters(), trained,
                                                      mean_squares):
                grad = parameter.grad
                # the pull back is measured from the weights before this step, as the
                # formulas above have it (taken after, it would shrink the step too)
                pull = (anchor - parameter) * decay if decay else None
                if grad is not None and rule == "sgd":
                    parameter.add_(grad, alpha=-lr)
                elif grad is not None:
                    mean_square.mul_(beta).addcmul_(grad, grad, value=1.0 - beta)
                    scale = (mean_square / (1.0 - beta ** updates)).sqrt_().add_(1e-8)
                    parameter.addcdiv_(grad, scale, value=-lr)
                if pull is not None:
                    parameter.add_(pull)
        state = detach_state(state)
    loss = total_nats / max(count, 1)
    bpc = loss / math.log(2)
    return {"loss": loss, "bpc": bpc, "perplexity": perplexity_of_bits(bpc), "characters": count,
            "dynamic": {"rule": rule, "lr": lr, "decay": decay, "window": window, "rows": rows}}
