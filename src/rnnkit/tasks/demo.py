"""The quick demo: learn the adding problem with an rnnkit recurrent network.

A short end-to-end run on generated data (no files, no network): a recurrent layer and a linear
head learn to add the two marked numbers of a sequence, which needs memory across the sequence.
Success is a test MSE far below 1/6, the error of always predicting the mean.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch
from torch import nn

import rnnkit
from rnnkit.data import adding_problem

MEAN_PREDICTOR_MSE = 1.0 / 6.0
_CELLS = {"lstm": rnnkit.LSTM, "gru": rnnkit.GRU, "rnn": rnnkit.RNN}


@dataclass
class DemoConfig:
    cell: str = "gru"
    hidden_size: int = 64
    steps: int = 50  #: sequence length T
    batch_size: int = 64
    train_steps: int = 1200
    learning_rate: float = 3e-3
    test_size: int = 2000
    seed: int = 0


class AddingModel(nn.Module):
    """(B, T, 2) -> recurrent layer -> last output -> linear -> (B, 1)."""

    def __init__(self, cell: str, hidden_size: int) -> None:
        super().__init__()
        if cell not in _CELLS:
            raise ValueError(f"cell must be one of {tuple(_CELLS)}; got {cell!r}")
        self.rnn = _CELLS[cell](2, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output, _ = self.rnn(x)
        return self.head(output[:, -1])


def run_demo(config: DemoConfig, log=print) -> dict:
    """Train on fresh batches, evaluate on a fixed held-out set; returns the results."""
    torch.manual_seed(config.seed)
    train_data = torch.Generator().manual_seed(config.seed)
    # the next seed, wrapping at the top of torch's range (2**64 - 1 + 1 overflowed)
    test_data = torch.Generator().manual_seed(config.seed + 1 if config.seed < 2 ** 64 - 1 else 0)
    test_x, test_y = adding_problem(config.test_size, config.steps, generator=test_data)
    model = AddingModel(config.cell, config.hidden_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    with torch.no_grad():
        model(test_x[:2])  # first call: builds the fused kernels once (not training time)
    start = time.perf_counter()
    report_every = max(1, config.train_steps // 8)
    for step in range(1, config.train_steps + 1):
        x, y = adding_problem(config.batch_size, config.steps, generator=train_data)
        loss = nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % report_every == 0 or step == config.train_steps:
            elapsed = time.perf_counter() - start
            log(f"step {step:5d}/{config.train_steps}  train mse {loss.item():.4f}  "
                f"{elapsed:5.1f} s")
    model.eval()
    with torch.no_grad():
        test_mse = nn.functional.mse_loss(model(test_x), test_y).item()
    return {
        "task": "adding problem",
        "config": asdict(config),
        "test_mse": test_mse,
        "mean_predictor_mse": MEAN_PREDICTOR_MSE,
        "train_seconds": time.perf_counter() - start,
    }
