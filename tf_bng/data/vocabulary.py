"""Word vocabularies for the text datasets (ids by decreasing frequency)."""

from __future__ import annotations

import collections
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["build_vocabulary", "encode"]


def build_vocabulary(tokens: Iterable[str], *, reserved: Sequence[str] = ()) -> dict[str, int]:
    """``reserved`` words first (in order), then the others by count, ties alphabetically."""
    counts = collections.Counter(tokens)
    skip = set(reserved)
    others = sorted((w for w in counts if w not in skip), key=lambda w: (-counts[w], w))
    words = list(reserved) + others
    return {word: index for index, word in enumerate(words)}


def encode(tokens: Sequence[str], vocabulary: dict[str, int], unknown: str) -> np.ndarray:
    """int32 ids of ``tokens``; words outside the vocabulary map to ``unknown``."""
    unknown_id = vocabulary[unknown]
    return np.asarray([vocabulary.get(t, unknown_id) for t in tokens], np.int32)
