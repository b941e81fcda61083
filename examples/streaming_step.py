"""Run an LSTM one frame at a time with FusedStepper and check it against the whole sequence.

Run: .venv/bin/python examples/streaming_step.py
"""

import time

import torch

import rnnkit
from rnnkit.backends.fused import FusedStepper

torch.manual_seed(0)
cell = rnnkit.LSTMCell(input_size=32, hidden_size=32)
frames = torch.randn(200, 1, 32)  # 200 steps of one stream

with torch.no_grad():
    whole, _ = rnnkit.Recurrent(cell, batch_first=False)(frames)

stepper = FusedStepper(cell, batch_size=1)
start = time.perf_counter()
outputs = [stepper.step(frame).clone() for frame in frames]
elapsed = time.perf_counter() - start

difference = (torch.stack(outputs) - whole).abs().max().item()
print(f"max |step-by-step - whole sequence| = {difference:.2e}")
print(f"{elapsed / len(frames) * 1e6:.2f} us per step (including the clone of each output)")
assert difference < 1e-5
