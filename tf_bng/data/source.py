"""A dataset as the registry sees it: its spec, its example stream, its preprocessing."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from tf_bng.data.options import get_option
from tf_bng.data.pipeline import Preprocess, array_stream
from tf_bng.data.spec import DatasetSpec

__all__ = ["Source", "array_source", "limit_of", "no_preprocess"]

# (config, split, training, seed) -> unbatched (x, y) examples: the global
# stream, endless and shuffled by seed when training, one ordered pass otherwise.
StreamFn = Callable[[Any, str, bool, int], tf.data.Dataset]


def no_preprocess(config: Any, training: bool) -> Preprocess | None:
    del config, training
    return None


@dataclasses.dataclass(frozen=True)
class Source:
    spec: Callable[[Any], DatasetSpec]
    stream: StreamFn
    splits: tuple[str, ...] = ("train", "test")
    eval_split: str = "test"
    preprocess: Callable[[Any, bool], Preprocess | None] = no_preprocess


def limit_of(config: Any) -> int | None:
    """``data.limit``: cap on the examples of every split (tests, smoke runs)."""
    limit = get_option(config, "limit")
    if limit is None:
        return None
    limit = int(limit)
    if limit < 1:
        raise ValueError(f"data.limit must be positive, got {limit}.")
    return limit


def array_source(
    *,
    spec: Callable[[Any], DatasetSpec],
    arrays: Callable[[Any, str], tuple[np.ndarray, np.ndarray]],
    splits: tuple[str, ...] = ("train", "test"),
    eval_split: str = "test",
    preprocess: Callable[[Any, bool], Preprocess | None] = no_preprocess,
) -> Source:
    """A :class:`Source` for data held in memory; ``arrays(config, split) -> (x, y)``."""

    def stream(config: Any, split: str, training: bool, seed: int) -> tf.data.Dataset:
        x, y = arrays(config, split)
        limit = limit_of(config)
        return array_stream(x[:limit], y[:limit], training=training, seed=seed)

    return Source(
        spec=spec, stream=stream, splits=splits, eval_split=eval_split, preprocess=preprocess
    )
