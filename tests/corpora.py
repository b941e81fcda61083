"""Small generated texts for language-model tests (no corpus package needed)."""

from __future__ import annotations

import torch

WORDS = ("and the lord said unto moses in the beginning god created heaven earth light "
         "darkness waters day night firmament").split()


def tiny_text(characters: int = 12000, seed: int = 0) -> str:
    """Word salad with sentence structure: learnable, but not trivially."""
    generator = torch.Generator().manual_seed(seed)
    pieces, size = [], 0
    while size < characters:
        sentence = " ".join(WORDS[i] for i in torch.randint(len(WORDS), (8,), generator=generator))
        pieces.append(sentence.capitalize() + ".\n")
        size += len(pieces[-1])
    return "".join(pieces)
