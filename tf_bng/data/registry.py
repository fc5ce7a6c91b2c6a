"""Dataset names -> sources; the public ``get_spec`` and ``build_dataset``."""

from __future__ import annotations

import dataclasses
from typing import Any

import tensorflow as tf

from tf_bng.data import ptb, rt_polarity, small_digits, synthetic, tfds_images
from tf_bng.data.options import collect_options, require_option
from tf_bng.data.pipeline import batch_stream
from tf_bng.data.source import Source, limit_of
from tf_bng.data.spec import EVAL, DatasetSpec

__all__ = ["DATASETS", "get_spec", "build_dataset"]

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


def get_spec(dataset: Any, **options: Any) -> DatasetSpec:
    """The :class:`DatasetSpec` of ``dataset`` (a name of :data:`DATASETS`).

    Reads or scans the data, so it fails fast when the data is absent.

    Args:
        dataset: A name of :data:`DATASETS`, or a mapping of options holding ``name``.
        **options: The dataset's options (``limit``, ``data_dir``, ``split_seed``...),
            those of :func:`build_dataset` and :mod:`tf_bng.data`; ``batch_size`` is not
            needed here.

    Returns:
        The spec; with ``limit``, its example counts are capped at ``limit``.

    Raises:
        ValueError: If the name is not one of :data:`DATASETS`, or an option is invalid.
        TypeError: If ``dataset`` is neither a name nor a mapping.
        DataUnavailableError: If the data is not on this machine (and
            ``download`` is not set, or the download did not provide it).
    """
    data_config = collect_options(dataset, options, kind="dataset")
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
    dataset: Any,
    *,
    split: str,
    training: bool,
    seed: int,
    input_context: tf.distribute.InputContext | None = None,
    **options: Any,
) -> tf.data.Dataset:
    """Batches ``(x, y)`` of one input pipeline (see :mod:`tf_bng.data.pipeline`).

    Every input pipeline of a distribution strategy (``input_context``) keeps
    its share of the same global batches, so any layout trains on what one
    device would.

    Args:
        dataset: A name of :data:`DATASETS`, or a mapping of options holding ``name``.
        split: ``"train"``, ``"eval"`` (the dataset's evaluation split) or a split name
            of the dataset.
        training: True: endless, shuffled by ``seed``, augmented, remainder dropped;
            False: one ordered pass, remainder kept.
        seed: The shuffling and augmentation seed.
        input_context: This pipeline's place in a distribution strategy (what
            ``distribute_datasets_from_function`` passes); None for one pipeline.
        **options: ``batch_size`` (global, required) and the dataset's options,
            described in :mod:`tf_bng.data`.

    Returns:
        The dataset of per-replica batches.

    Raises:
        ValueError: If the name or the split is unknown, ``batch_size`` is missing or
            below 1, or an option is invalid.
        TypeError: If ``dataset`` is neither a name nor a mapping.
        DataUnavailableError: If the data is not on this machine.
    """
    data_config = collect_options(dataset, options, kind="dataset")
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
