"""Text generation from a trained character model: sampling (streamed) and beam search.

The prompt is read in one forward pass, then each next character is drawn from
``softmax(logits / temperature)`` restricted to the top-k and/or nucleus (top-p), or taken
greedily (temperature 0), and fed back as the next input. Characters are yielded as they are
produced, so a caller can print them live. Beam search instead keeps the ``beam_width`` most
probable continuations and returns the best one at the end.
"""

from __future__ import annotations

from typing import Iterator

import torch

from rnnkit.data.text import CorpusError
from rnnkit.runtime import beam_search, sample_next
from rnnkit.runtime.sampling import check_sampling_options, whole_number
from rnnkit.training import evaluating

from .task import LoadedModel


def prompt_as_read(vocabulary, prompt: str) -> str:
    """The prompt with Windows line ends (CRLF) as newlines, as a corpus file is read, unless
    the model knows a CR (trained on a file with lone CRs as its line ends): a prompt pasted
    from the training file itself was refused for its '\\r'."""
    return prompt if "\r" in vocabulary else prompt.replace("\r\n", "\n")


def encode_prompt(loaded: LoadedModel, prompt: str, *, unknown: str = "error") -> torch.Tensor:
    """(1, P) ids of the prompt (see :func:`prompt_as_read`); an empty prompt starts from a
    newline (a paragraph start)."""
    vocabulary = loaded.vocabulary
    if unknown not in ("error", "skip"):
        raise ValueError(f"unknown must be 'error' or 'skip'; got {unknown!r}")
    prompt = prompt_as_read(vocabulary, prompt)
    missing = vocabulary.unknown_characters(prompt)
    if missing and unknown == "error":
        shown = "".join(missing[:10])
        raise CorpusError(
            f"the prompt has {len(missing)} character(s) the model never saw in training: "
            f"{shown!r}; remove them or pass --unknown skip to drop them"
        )
    ids = vocabulary.encode(prompt, unknown="skip")
    if ids.numel() == 0:
        if "\n" not in vocabulary:
            raise CorpusError("the prompt is empty (after dropping unknown characters) and the "
                              "vocabulary has no newline to start from; give a prompt")
        ids = vocabulary.encode("\n")
    return ids.unsqueeze(0).to(_device(loaded.model))


def _device(model: torch.nn.Module) -> torch.device:
    """Where the model's weights are (load_lm(..., device=...)): the prompt and the seeded
    generator go there too."""
    return next(model.parameters()).device


def _check_options(length: int, temperature: float, top_k: int | None = None,
                   top_p: float | None = None) -> None:
    whole = whole_number(length)  # any integer (NumPy's too), never a bool or 2.5
    if whole is None or whole < 1:
        raise ValueError(f"length must be an integer >= 1 (characters); got {length!r}")
    check_sampling_options(temperature=temperature, top_k=top_k, top_p=top_p)


def generate(loaded: LoadedModel, prompt: str = "", *, length: int = 300,
             temperature: float = 0.8, top_k: int | None = None, top_p: float | None = None,
             seed: int | None = None, unknown: str = "error") -> Iterator[str]:
    """Yield ``length`` generated characters one at a time (the prompt is not repeated).

    The same ``seed`` gives the same text; ``temperature=0`` is greedy decoding.
    """
    # Checked here, not on the first next(): bad options or a bad prompt fail before anything
    # is printed.
    _check_options(length, temperature, top_k, top_p)
    tokens = encode_prompt(loaded, prompt, unknown=unknown)
    generator = (torch.Generator(device=_device(loaded.model)).manual_seed(seed)
                 if seed is not None else None)
    return _sample(loaded, tokens, length, temperature, top_k, top_p, generator)


def _sample(loaded: LoadedModel, tokens: torch.Tensor, length: int, temperature: float,
            top_k: int | None, top_p: float | None, generator) -> Iterator[str]:
    model, vocabulary = loaded.model, loaded.vocabulary
    # Inference settings around each step's work only: a generator paused at `yield` runs the
    # caller's code (training, another generator on the same model), whose grad mode and
    # training flag must stay its own.
    with evaluating(model):
        logits, state = model(tokens)
    for index in range(length):
        with evaluating(model):
            if index:
                logits, state = model(token.view(1, 1), state)
            token = sample_next(logits[:, -1].float(), temperature=temperature, top_k=top_k,
                                top_p=top_p, generator=generator)
        yield vocabulary.decode(token)


def generate_beam(loaded: LoadedModel, prompt: str = "", *, length: int = 300,
                  beam_width: int = 4, unknown: str = "error") -> str:
    """The most probable continuation of ``length`` characters found by beam search."""
    _check_options(length, 0.0)
    model = loaded.model
    tokens = encode_prompt(loaded, prompt, unknown=unknown)

    def step(batch_tokens: torch.Tensor, batch_state):
        step_logits, next_state = model(batch_tokens.view(-1, 1), batch_state)
        return step_logits[:, -1].float(), next_state

    with evaluating(model):
        logits, state = model(tokens)
        # torch-style recurrent states are (layers, B, H): the batch is dimension 1.
        best = beam_search(step, state, logits[:, -1].float(), beam_width=beam_width,
                           length=length, state_batch_dim=1)
    return loaded.vocabulary.decode(best[0].tokens)
