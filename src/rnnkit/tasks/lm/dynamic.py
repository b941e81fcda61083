"""Dynamic evaluation: a language model that keeps learning from the text it has just scored.

Krause et al. (2018) adapt the weights to the recent history at evaluation time: each window
of T characters is first scored (that score is what is reported), and only then used for one
gradient step, so the model never sees a character before predicting it. Adaptive compressors
(zlib, bzip2, xz, PPM) work the same way, which makes this the like-for-like comparison with
their bars; the static score (:func:`~rnnkit.tasks.lm.task.bits_per_character`) is the
model's own number. The update is plain SGD pulled back towards the trained weights:

    theta <- theta - lr * grad_window + decay * (theta_trained - theta)
"""

from __future__ import annotations

import copy
import math

import torch
from torch.nn import functional as F

from rnnkit.training import detach_state

from .model import CharLanguageModel


def dynamic_bits_per_character(model: CharLanguageModel, tokens: torch.Tensor, *, rows: int,
                               window: int = 64, lr: float = 0.01, decay: float = 0.0,
                               device: str = "cpu") -> dict:
    """Score ``tokens`` (N,) while adapting a copy of ``model``; ``model`` itself is unchanged.

    The stream is read as ``rows`` side-by-side rows, ``window`` characters at a time, as in
    training. Returns ``loss`` (nats), ``bpc``, ``perplexity``, ``characters``.
    """
    if lr < 0 or decay < 0:
        raise ValueError(f"lr and decay must be >= 0; got {lr} and {decay}")
    adapted = copy.deepcopy(model).to(device).eval()  # eval: no dropout while adapting
    trained = [p.detach().clone() for p in adapted.parameters()]
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
        with torch.no_grad():
            for parameter, anchor in zip(adapted.parameters(), trained):
                if parameter.grad is not None:
                    parameter.add_(parameter.grad, alpha=-lr)
                if decay:
                    parameter.add_(anchor - parameter, alpha=decay)
        state = detach_state(state)
    loss = total_nats / max(count, 1)
    bpc = loss / math.log(2)
    return {"loss": loss, "bpc": bpc, "perplexity": 2.0 ** bpc, "characters": count,
            "dynamic": {"lr": lr, "decay": decay, "window": window, "rows": rows}}
