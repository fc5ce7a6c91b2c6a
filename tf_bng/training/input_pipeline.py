"""Distributed input for the loop, resumable by step count.

A distributed iterator cannot be checkpointed, so the position in the
training stream is the step counter: on resume the same seeded pipeline is
rebuilt and the consumed batches are skipped, which replays the exact
stream (``fast_forward``). Skipping reads the skipped data once; for very
large inputs set ``fast_forward`` off, and the resumed run draws a fresh
stream seeded by ``seed + step`` instead.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from tf_bng import data as data_lib

__all__ = ["distribute_split", "train_iterator"]


def distribute_split(
    strategy: tf.distribute.Strategy,
    data_config: Any,
    *,
    split: str,
    training: bool,
    seed: int,
    skip_steps: int = 0,
):
    """``distribute_datasets_from_function`` over ``tf_bng.data.build_dataset``.

    Each input pipeline yields per-replica batches and feeds
    ``replicas / pipelines`` replicas per step, so skipping ``n`` steps skips
    that many batches ``n`` times over.
    """

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        dataset = data_lib.build_dataset(
            data_config, split=split, training=training, seed=seed, input_context=context
        )
        if skip_steps:
            per_step = context.num_replicas_in_sync // context.num_input_pipelines
            dataset = dataset.skip(int(skip_steps) * per_step)
        return dataset

    return strategy.distribute_datasets_from_function(dataset_fn)


def train_iterator(
    strategy: tf.distribute.Strategy,
    data_config: Any,
    *,
    seed: int,
    start_step: int = 0,
    fast_forward: bool = True,
):
    """An iterator over the training stream positioned after ``start_step`` steps."""
    if fast_forward or not start_step:
        dataset = distribute_split(
            strategy, data_config, split="train", training=True, seed=seed, skip_steps=start_step
        )
    else:
        dataset = distribute_split(
            strategy, data_config, split="train", training=True, seed=seed + int(start_step)
        )
    return iter(dataset)
