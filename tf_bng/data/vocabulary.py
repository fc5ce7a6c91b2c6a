"""Word vocabularies for the text datasets (ids by decreasing frequency)."""

from __future__ import annotations

import collections
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["build_vocabulary", "encode"]


def build_vocabulary(tokens: Iterable[str], *, reserved: Sequence[str] = ()) -> dict[str, int]:
    """``reserved`` words first (in order), then the others by count, ties alphabetically.

    Args:
        tokens: Every token of the corpus the vocabulary covers.
        reserved: Words with the first ids, e.g. ``("<pad>",)`` for id 0.

    Returns:
        ``{word: id}``, ids 0, 1, ... in that order.
    """
    counts = collections.Counter(tokens)
    skip = set(reserved)
    others = sorted((w for w in counts if w not in skip), key=lambda w: (-counts[w], w))
    words = list(reserved) + others
    return {word: index for index, word in enumerate(words)}


def encode(tokens: Sequence[str], vocabulary: dict[str, int], unknown: str) -> np.ndarray:
    """int32 ids of ``tokens``; words outside the vocabulary map to ``unknown``.

    Args:
        tokens: The words to encode.
        vocabulary: ``{word: id}`` (see :func:`build_vocabulary`).
        unknown: The vocabulary word that stands for any other.

    Returns:
        An int32 array, one id per token.

    Raises:
        KeyError: If ``unknown`` is not in ``vocabulary``.
    """
    unknown_id = vocabulary[unknown]
    return np.asarray([vocabulary.get(t, unknown_id) for t in tokens], np.int32)
