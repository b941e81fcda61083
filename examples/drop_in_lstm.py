"""Swap torch.nn.LSTM for rnnkit.LSTM, keep the weights, and use lengths= instead of packing.

Run: .venv/bin/python examples/drop_in_lstm.py
"""

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit

torch.manual_seed(0)
reference = torch.nn.LSTM(input_size=8, hidden_size=16, num_layers=2, bidirectional=True,
                          batch_first=True)
model = rnnkit.LSTM(input_size=8, hidden_size=16, num_layers=2, bidirectional=True,
                    batch_first=True)
model.load_state_dict(reference.state_dict())  # same keys, same gate order

x = torch.randn(4, 12, 8)                 # (B, T, I); values past each length are ignored
lengths = torch.tensor([12, 9, 5, 1])

# torch.nn needs a PackedSequence for variable lengths ...
packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
packed_out, (h_ref, c_ref) = reference(packed)
out_ref, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=12)

# ... rnnkit takes the padded batch and its lengths directly (PackedSequence works too).
out, (h, c) = model(x, lengths=lengths)

print("max |output difference|:", (out - out_ref).abs().max().item())
print("max |h_n difference|:   ", (h - h_ref).abs().max().item())
assert torch.allclose(out, out_ref, atol=1e-5) and torch.allclose(h, h_ref, atol=1e-5)
print("rnnkit.LSTM matches torch.nn.LSTM")
