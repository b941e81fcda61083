"""Serve a small keyword-spotting style model to two streams, save their state, then export it.

A GRU with an MLP head runs per frame in a StreamingSession (two independent streams), the
streams' state is saved and restored exactly, and the same model is exported to ONNX, NumPy
and C99; each export reports its measured difference from PyTorch.

Run: .venv/bin/python examples/deploy_streaming.py
"""

import tempfile
from pathlib import Path

import torch
from torch import nn

import rnnkit
from rnnkit.errors import MissingExtraError
from rnnkit.export import export_c, export_numpy, export_onnx
from rnnkit.runtime import StreamingSession

torch.manual_seed(0)
model = rnnkit.GRU(input_size=13, hidden_size=32, num_layers=2, batch_first=True)
head = nn.Sequential(nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 4))  # 4 keyword scores
frames = torch.randn(2, 50, 13)  # two microphones, 50 frames of 13 features each

with torch.no_grad():
    whole = head(model(frames)[0])  # the oracle: each stream's whole sequence at once

session = StreamingSession(model, head=head, streams=["mic-1", "mic-2"])
outputs = {stream: [] for stream in session.stream_ids}
for t in range(30):  # frames arrive interleaved from both streams
    for index, stream in enumerate(session.stream_ids):
        outputs[stream].append(session.step(frames[index, t].clone(), stream).clone())

saved = session.state_to_bytes()  # e.g. before a server restart
restarted = StreamingSession(model, head=head, streams=0)
restarted.state_from_bytes(saved)
for index, stream in enumerate(restarted.stream_ids):
    outputs[stream].extend(restarted.feed(frames[index, 30:], stream))

difference = max((torch.stack(outputs[s]) - whole[i]).abs().max().item()
                 for i, s in enumerate(session.stream_ids))
print(f"{session}\nmax |streamed - whole sequence| = {difference:.2e} (across a save/restore)")
assert difference < 1e-5

with tempfile.TemporaryDirectory() as folder:
    for export in (export_onnx, export_numpy, export_c):
        try:
            report = export(model, Path(folder) / export.__name__, head=head)
        except MissingExtraError as missing:  # ONNX needs rnnkit[export]; the others do not
            print(f"{export.__name__}: skipped ({missing})")
            continue
        # Each export runs its own check and raises ExportMismatchError past the limit; the
        # report says what was measured, or why it could not be (e.g. no C compiler here).
        print(report.summary())
