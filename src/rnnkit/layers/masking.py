"""Variable-length batches without packing: ``lengths``, boolean masks and PackedSequence.

Everything here turns what the user passed into one canonical form, a (B,) int64 tensor of valid
lengths in 1..T on the input's device, or fails with a one-line error naming the fix.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple, Sequence

import numpy as np
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence


def normalize_lengths(
    lengths, *, batch_size: int, steps: int, batch_first: bool, device: torch.device
) -> torch.Tensor | None:
    """Check ``lengths`` and return it as a (B,) int64 tensor on ``device`` (None stays None).

    ``lengths`` is a 1-D integer tensor, NumPy array or sequence of ints, one per sequence, each
    in 1..T; or a boolean mask shaped like the input's first two dims ((B, T) if batch_first else
    (T, B)), True on each sequence's valid prefix.
    """
    if lengths is None:
        return None
    if isinstance(lengths, np.ndarray):
        if (lengths.dtype == np.uint64 and lengths.shape == (batch_size,) and batch_size
                and lengths.max() > steps):
            # Checked here: past 2**63 the int64 the checks below work in would wrap negative.
            _refuse_too_long(int(lengths.max()), int(lengths.argmax()), steps)
        lengths = torch.from_numpy(lengths)
    if not isinstance(lengths, torch.Tensor):
        if not isinstance(lengths, Sequence):
            raise TypeError(
                f"lengths must be a 1-D integer tensor or array, a list of ints or a boolean "
                f"mask; got {type(lengths).__name__}"
            )
        for index, value in enumerate(lengths):
            # numbers.Integral takes NumPy's integers too (np.int64 from an array's elements)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool):
                raise TypeError(
                    f"lengths must be a 1-D integer tensor or array, a list of ints or a boolean "
                    f"mask; got {type(lengths).__name__} with {type(value).__name__} {value!r} at "
                    f"index {index}"
                )
        values = [int(value) for value in lengths]
        if len(values) != batch_size:  # the count first: a stray entry is the mistake then
            _refuse_shape(batch_size, (len(values),))
        # Checked before the int64 conversion, which fails on values past 2**63 - 1.
        if values and min(values) < 1:
            _refuse_too_short(min(values), values.index(min(values)))
        if values and max(values) > steps:
            _refuse_too_long(max(values), values.index(max(values)), steps)
        lengths = torch.tensor(values, dtype=torch.int64)
    if lengths.layout != torch.strided:
        raise TypeError(f"lengths must be a dense tensor; got layout {lengths.layout}: pass "
                        f"lengths.to_dense()")
    if lengths.device.type == "meta" and torch.device(device).type != "meta":
        raise ValueError("lengths is on the meta device, which holds no values to run on; pass "
                         "lengths as a CPU tensor, an array or a list")
    if lengths.dtype == torch.bool:
        return _lengths_from_mask(lengths, batch_size, steps, batch_first).to(device)
    if lengths.is_floating_point() or lengths.is_complex():
        raise TypeError(
            f"lengths must be an integer tensor (or a boolean mask); got dtype {lengths.dtype}"
        )
    if lengths.dim() != 1 or lengths.numel() != batch_size:
        _refuse_shape(batch_size, tuple(lengths.shape))
    lengths = lengths.to(torch.int64)
    if batch_size == 0 or not _has_values(lengths):
        return lengths.to(device)
    if torch.compiler.is_compiling():
        # Traced (torch.compile, torch.export): the values are unknown until run time, so the
        # check is an assertion in the graph instead of a Python branch (which could not be
        # traced), and the error a RuntimeError without the offending index.
        # T stays out of the message: formatting a symbolic T (dynamic shapes) would fix its
        # value in the graph, one compiled graph per sequence length.
        torch._assert_async(((lengths >= 1) & (lengths <= steps)).all(),
                            "lengths must be in 1..T, T the input's number of time steps")
        return lengths.to(device)
    smallest, largest = int(lengths.min()), int(lengths.max())
    if smallest < 1:
        _refuse_too_short(smallest, int(torch.argmin(lengths)))
    if largest > steps:
        _refuse_too_long(largest, int(torch.argmax(lengths)), steps)
    # A copy, never the caller's tensor or memory shared with their array: the fused ops save
    # lengths for backward, and an edit of the caller's between forward and backward then
    # failed autograd's version check, where torch.nn and the reference backend hold no
    # reference to it.
    return lengths.to(device, copy=True)


def _refuse_shape(batch_size: int, shape: tuple) -> None:
    raise ValueError(
        f"lengths must have one entry per sequence, shape ({batch_size},); got shape {shape}"
    )


def _refuse_too_short(length: int, index: int) -> None:
    raise ValueError(
        f"lengths must be >= 1 (an empty sequence has no state to return); "
        f"got {length} at index {index}: drop empty sequences from the batch"
    )


def _refuse_too_long(length: int, index: int, steps: int) -> None:
    raise ValueError(
        f"lengths must be <= the sequence length T={steps}; got {length} at index {index}"
    )


def _has_values(tensor: torch.Tensor) -> bool:
    """Whether ``tensor``'s values can be read or asserted on here: not on the meta device and
    not a fake tensor (FakeTensorMode outside torch.compile), where checking them could only
    fail. Traced, they are asserted in the graph (and dynamo may not call is_fake)."""
    if torch.compiler.is_compiling():
        return True
    from torch._subclasses.fake_tensor import is_fake

    return tensor.device.type != "meta" and not is_fake(tensor)


def _lengths_from_mask(mask: torch.Tensor, batch_size: int, steps: int, batch_first: bool):
    expected = (batch_size, steps) if batch_first else (steps, batch_size)
    if tuple(mask.shape) != expected:
        layout = "(B, T)" if batch_first else "(T, B)"
        raise ValueError(
            f"a boolean lengths mask must have the input's shape {layout} = {expected}; "
            f"got {tuple(mask.shape)}"
        )
    mask = mask if batch_first else mask.t()
    lengths = mask.sum(dim=1)
    prefix = torch.arange(steps, device=mask.device).unsqueeze(0) < lengths.unsqueeze(1)
    if not _has_values(mask):
        return lengths.to(torch.int64)
    if torch.compiler.is_compiling():  # traced: asserted at run time (see normalize_lengths)
        torch._assert_async((prefix == mask).all() & (lengths >= 1).all(),
                            "a boolean lengths mask must be True on a non-empty prefix of each "
                            "sequence and False after it")
        return lengths.to(torch.int64)
    if not torch.equal(prefix, mask):
        row = int((prefix != mask).any(dim=1).nonzero()[0])
        raise ValueError(
            f"a boolean lengths mask must be True on a prefix of each sequence and False after "
            f"it (right padding); sequence {row} is not"
        )
    if lengths.numel() and int(lengths.min()) < 1:
        raise ValueError(
            f"a boolean lengths mask must have at least one True per sequence; "
            f"sequence {int(torch.argmin(lengths))} has none"
        )
    return lengths.to(torch.int64)


def valid_steps(lengths: torch.Tensor, steps: int, batch_first: bool) -> torch.Tensor:
    """Boolean (B, T) (or (T, B)) mask, True where step t < lengths[b]."""
    mask = torch.arange(steps, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)
    return mask if batch_first else mask.t()


class PackingInfo(NamedTuple):
    """What is needed to pack an output exactly like the input PackedSequence."""

    lengths: torch.Tensor  #: (B,) int64, CPU, original batch order
    sorted_indices: torch.Tensor | None
    unsorted_indices: torch.Tensor | None


def unpack(packed: PackedSequence, batch_first: bool) -> tuple[torch.Tensor, PackingInfo]:
    """PackedSequence -> zero-padded tensor in the original batch order, plus packing info.

    One scatter of the packed rows into zeros, the inverse of :func:`repack`'s gather
    (pad_packed_sequence pads in sorted order and then reorders the whole padded copy). Small
    inputs, tracing and torch.compile keep pad_packed_sequence (see :func:`_by_torch`).
    """
    if not (torch.compiler.is_compiling() or torch.jit.is_tracing()):
        check_batch_sizes(packed)
    if _by_torch(packed.data):
        padded, lengths = pad_packed_sequence(packed, batch_first=batch_first)
        return padded, PackingInfo(lengths, packed.sorted_indices, packed.unsorted_indices)
    data, batch_sizes = packed.data, packed.batch_sizes.cpu()
    order = packed.sorted_indices
    batch = int(batch_sizes[0]) if len(batch_sizes) else 0
    running = torch.arange(batch).unsqueeze(0) < batch_sizes.unsqueeze(1)  # (T, B) by rank
    step, sequence = _packed_positions(running, order)
    lengths = running.sum(0)  # by rank, longest first
    if order is not None:
        lengths = lengths[packed.unsorted_indices.cpu()]
    steps = len(batch_sizes)
    shape = (batch, steps) if batch_first else (steps, batch)
    padded = data.new_zeros(*shape, *data.shape[1:])
    rows = _flat_rows(step, sequence, steps, batch, batch_first).to(data.device)
    padded.view(steps * batch, *data.shape[1:]).index_copy_(0, rows, data)  # in place
    return padded, PackingInfo(lengths, packed.sorted_indices, packed.unsorted_indices)


# From this many values on, packing and unpacking gather and scatter the rows themselves; below,
# torch's one-call pack/pad functions are faster (the dozen small index ops cost ~30 us per
# call: GRU H = 32, B = 4, T = 50 inference 245-285 against ~205 us), and the copies they make
# are small. At B = 64, T = 200, H = 32 (~400k values in the output) the gather was already
# ~10% faster through the layer.
_GATHER_FROM = 1 << 18


def _by_torch(values: torch.Tensor) -> bool:
    """Whether to pack or pad with torch's functions: small tensors, and under tracing or
    torch.compile, where the data-dependent index would split the graph."""
    return (values.numel() < _GATHER_FROM or torch.compiler.is_compiling()
            or torch.jit.is_tracing())


def _packed_positions(running: torch.Tensor,
                      order: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(step, sequence) of every packed row, in the packed order: ``running`` is (T, B), True
    where the sequence of rank j (longest first) is still running at step t, so its row-major
    nonzeros are the packed rows; ``order`` (sorted_indices) maps a rank to its sequence."""
    step, rank = running.nonzero(as_tuple=True)
    return step, (rank if order is None else order.cpu()[rank])


def _flat_rows(step: torch.Tensor, sequence: torch.Tensor, steps: int, batch: int,
               batch_first: bool) -> torch.Tensor:
    """Row numbers of (step, sequence) pairs in a contiguous padded tensor viewed as rows, so
    that index_select / index_copy_ move whole rows (indexing by the pair goes through torch's
    general advanced-indexing kernel instead)."""
    return sequence * steps + step if batch_first else step * batch + sequence


def check_batch_sizes(packed: PackedSequence) -> None:
    """A one-line error for a PackedSequence whose batch_sizes cannot describe its data
    (pack_padded_sequence builds one from a length past T), which failed later with a reshape
    or broadcast message naming neither."""
    sizes = packed.batch_sizes.tolist()
    rows = packed.data.size(0) if packed.data.dim() else 0
    shown = sizes if len(sizes) <= 8 else sizes[:8] + ["..."]
    if not sizes:
        # pack_padded_sequence never makes one; torch's own message was "batch_sizes can not
        # be empty"
        raise ValueError("the PackedSequence holds no time steps (empty batch_sizes); pack at "
                         "least one step of one sequence")
    if sum(sizes) != rows:
        problem = f"its batch_sizes {shown} sum to {sum(sizes)}, but it has {rows} data rows"
    elif any(b < 0 or b > a for a, b in zip(sizes, sizes[1:])) or (sizes and sizes[0] < 1):
        problem = f"its batch_sizes {shown} are not a non-increasing run of counts from >= 1"
    else:
        return
    raise ValueError(f"the PackedSequence is malformed: {problem}; pack it with "
                     f"pack_padded_sequence(x, lengths) with every length <= T")


def repack(output: torch.Tensor, info: PackingInfo, batch_first: bool) -> PackedSequence:
    """Pack ``output`` (padded, original batch order) with the input's batch order and sizes.

    Packed row n is step t of the n-th sequence still running at t, in sorted order: one gather
    ``output[t, sorted[j]]`` (``output[sorted[j], t]`` when batch_first) of exactly those rows.
    Reordering the whole padded output with ``index_select`` and then packing it copied it
    twice, where torch.nn.GRU on packed input holds its output once (inference at T = 1000,
    B = 16, 2H = 1024 peaked ~200 MB above torch.nn). Small outputs, tracing and
    torch.compile keep the two-copy form (see :func:`_by_torch`).
    """
    if _by_torch(output):
        return _repack_by_padding(output, info, batch_first)
    order = info.sorted_indices
    lengths = info.lengths if order is None else info.lengths[order.cpu()]  # longest first
    steps = int(lengths[0]) if len(lengths) else 0
    running = lengths.unsqueeze(0) > torch.arange(steps).unsqueeze(1)  # (T, B) by rank
    step, sequence = _packed_positions(running, order)
    batch = output.size(0 if batch_first else 1)
    time_major = output.transpose(0, 1) if batch_first else output
    # rows of whichever layout is contiguous: time-major (one direction's batch_first output is
    # a transposed view of it) or batch-major (a bidirectional batch_first output)
    if time_major.is_contiguous() or (batch_first and output.is_contiguous()):
        stored, by_batch = (time_major, False) if time_major.is_contiguous() else (output, True)
        rows = _flat_rows(step, sequence, time_major.size(0), batch, batch_first=by_batch)
        data = stored.reshape(-1, *output.shape[2:]).index_select(0, rows.to(output.device))
    else:
        step, sequence = step.to(output.device), sequence.to(output.device)
        data = output[sequence, step] if batch_first else output[step, sequence]
    return PackedSequence(data, running.sum(1), info.sorted_indices, info.unsorted_indices)


def _repack_by_padding(output: torch.Tensor, info: PackingInfo,
                       batch_first: bool) -> PackedSequence:
    lengths = info.lengths
    if info.sorted_indices is not None:
        output = output.index_select(0 if batch_first else 1, info.sorted_indices.to(output.device))
        lengths = lengths[info.sorted_indices.cpu()]
    packed = pack_padded_sequence(output, lengths, batch_first=batch_first, enforce_sorted=True)
    return PackedSequence(packed.data, packed.batch_sizes, info.sorted_indices, info.unsorted_indices)
