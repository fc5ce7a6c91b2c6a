"""Dataset names -> sources; the public ``get_spec`` / ``build_dataset`` / ``distribute``."""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import tensorflow as tf

from tf_bng.data import ptb, rt_polarity, small_digits, synthetic, tfds_images
from tf_bng.data._config import require_option
from tf_bng.data.pipeline import batch_stream
from tf_bng.data.source import Source, limit_of
from tf_bng.data.spec import EVAL, DatasetSpec

__all__ = ["DATASETS", "get_spec", "build_dataset", "distribute"]

_SOURCES: dict[str, Source] = {
    "mnist5k": small_digits.MNIST5K,
    "digits": small_digits.DIGITS,
    "mnist": tfds_images.MNIST,
    "cifar10": tfds_images.CIFAR10,
    "cifar100": tfds_images.CIFAR100,
    "imagenet2012": tfds_images.IMAGENET2012,
    "ptb": ptb.PTB,
    "rt_polarity": rt_polarity.RT_POLARITY,
    "quadratic": synthetic.QUADRATIC,
    "synthetic": synthetic.SYNTHETIC,
}
DATASETS: tuple[str, ...] = tuple(_SOURCES)


def _source(data_config: Any) -> Source:
    name = require_option(data_config, "name")
    try:
        return _SOURCES[name]
    except KeyError:
        raise ValueError(
            f"Unknown dataset {name!r}. Valid choices: {', '.join(DATASETS)}."
        ) from None


def _resolve_split(source: Source, split: str) -> str:
    if split == EVAL:
        return source.eval_split
    if split not in source.splits:
        raise ValueError(
            f"Unknown split {split!r}. Valid choices: {', '.join((EVAL,) + source.splits)}."
        )
    return split


def get_spec(data_config: Any) -> DatasetSpec:
    """The dataset's :class:`DatasetSpec` (reads or scans the data; fails fast when absent)."""
    source = _source(data_config)
    spec = source.spec(data_config)
    limit = limit_of(data_config)
    if limit:
        spec = dataclasses.replace(
            spec,
            train_examples=min(spec.train_examples, limit),
            eval_examples=min(spec.eval_examples, limit),
        )
    return dataclasses.replace(spec, eval_split=source.eval_split)


def build_dataset(
    data_config: Any,
    *,
    split: str,
    training: bool,
    seed: int,
    input_context: Optional[tf.distribute.InputContext] = None,
) -> tf.data.Dataset:
    """Batches ``(x, y)`` of one input pipeline (see :mod:`tf_bng.data.pipeline`).

    ``split`` is ``"train"``, ``"eval"`` (the dataset's evaluation split) or a
    split name of the dataset. ``training=True``: endless, shuffled by
    ``seed``, augmented, remainder dropped. ``training=False``: one ordered
    pass, remainder kept.
    """
    source = _source(data_config)
    split = _resolve_split(source, split)
    stream = source.stream(data_config, split, training, int(seed))
    return batch_stream(
        stream,
        global_batch_size=int(require_option(data_config, "batch_size")),
        training=training,
        seed=int(seed),
        input_context=input_context,
        preprocess=source.preprocess(data_config, training),
    )


def distribute(
    strategy: tf.distribute.Strategy, data_config: Any, *, split: str, training: bool, seed: int
) -> tf.distribute.DistributedDataset:
    """:func:`build_dataset` in every input pipeline of ``strategy``."""

    def dataset_fn(input_context: tf.distribute.InputContext) -> tf.data.Dataset:
        return build_dataset(
            data_config, split=split, training=training, seed=seed, input_context=input_context
        )

    return strategy.distribute_datasets_from_function(dataset_fn)
