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
    """The default :attr:`Source.preprocess`: examples go to the batches as they are.

    Args:
        config: The dataset options (unused).
        training: Whether the stream trains (unused).

    Returns:
        None.
    """
    del config, training
    return None


@dataclasses.dataclass(frozen=True)
class Source:
    """One dataset of the registry: how to describe it, stream it and preprocess it.

    Each callable takes the dataset's options (``config``), so one source
    serves every ``limit``, ``data_dir`` or ``split_seed``.

    Attributes:
        spec: ``config -> DatasetSpec``; reads or scans the data (fails fast when it is
            absent).
        stream: ``(config, split, training, seed) -> dataset`` of unbatched ``(x, y)``
            examples: the global stream, endless and shuffled by ``seed`` when
            training, one ordered pass otherwise.
        splits: The dataset's split names.
        eval_split: The split ``"eval"`` resolves to (the one the paper reports).
        preprocess: ``(config, training) -> Preprocess | None``: the per-example function
            applied before batching (augmentation, normalization).
    """

    spec: Callable[[Any], DatasetSpec]
    stream: StreamFn
    splits: tuple[str, ...] = ("train", "test")
    eval_split: str = "test"
    preprocess: Callable[[Any, bool], Preprocess | None] = no_preprocess


def limit_of(config: Any) -> int | None:
    """``data.limit``: cap on the examples of every split (tests, smoke runs).

    Args:
        config: The dataset options.

    Returns:
        The limit, or None when not set.

    Raises:
        ValueError: If the limit is below 1.
    """
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
    """A :class:`Source` for data held in memory; ``arrays(config, split) -> (x, y)``.

    Args:
        spec: ``config -> DatasetSpec``.
        arrays: ``(config, split) -> (x, y)`` NumPy arrays, one row per example; the
            stream keeps the first ``data.limit`` rows.
        splits: The dataset's split names.
        eval_split: The split ``"eval"`` resolves to.
        preprocess: ``(config, training) -> Preprocess | None``.

    Returns:
        The source.
    """

    def stream(config: Any, split: str, training: bool, seed: int) -> tf.data.Dataset:
        x, y = arrays(config, split)
        limit = limit_of(config)
        return array_stream(x[:limit], y[:limit], training=training, seed=seed)

    return Source(
        spec=spec, stream=stream, splits=splits, eval_split=eval_split, preprocess=preprocess
    )
