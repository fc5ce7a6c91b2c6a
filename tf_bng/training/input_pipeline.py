"""Distributed input for the loop, resumable by step count.

A distributed iterator cannot be checkpointed, so the position in the
training stream is the step counter: on resume the same seeded pipeline is
rebuilt and the consumed batches are skipped, which replays the exact
stream (``fast_forward``). Skipping reads the skipped data once; for very
large inputs set ``fast_forward`` off, and the resumed run draws a fresh
stream seeded by ``seed + step`` instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import tensorflow as tf

__all__ = ["distribute", "resumable_iterator"]

# (seed, input context) -> the per-replica batches of one input pipeline.
DatasetFn = Callable[[int, tf.distribute.InputContext], tf.data.Dataset]


def distribute(
    strategy: tf.distribute.Strategy, dataset_fn: DatasetFn, *, seed: int, skip_steps: int = 0
) -> tf.distribute.DistributedDataset:
    """``distribute_datasets_from_function`` over ``dataset_fn``, ``skip_steps`` steps in.

    Each input pipeline yields per-replica batches and feeds
    ``replicas / pipelines`` replicas per step, so skipping ``n`` steps skips
    that many batches ``n`` times over.

    Args:
        strategy: The strategy to distribute over.
        dataset_fn: ``(seed, input_context) -> dataset`` of per-replica batches.
        seed: The seed handed to ``dataset_fn``.
        skip_steps: How many steps of batches to skip at the start.

    Returns:
        The distributed dataset.
    """

    def per_pipeline(context: tf.distribute.InputContext) -> tf.data.Dataset:
        dataset = dataset_fn(seed, context)
        if skip_steps:
            per_step = context.num_replicas_in_sync // context.num_input_pipelines
            dataset = dataset.skip(int(skip_steps) * per_step)
        return dataset

    return strategy.distribute_datasets_from_function(per_pipeline)


def resumable_iterator(
    strategy: tf.distribute.Strategy,
    dataset_fn: DatasetFn,
    *,
    seed: int,
    start_step: int = 0,
    fast_forward: bool = True,
    batches_per_step: int = 1,
) -> Iterator:
    """An iterator over the training stream positioned after ``start_step`` steps.

    Args:
        strategy: The strategy to distribute over.
        dataset_fn: ``(seed, input_context) -> dataset`` of per-replica batches.
        seed: The training stream's seed.
        start_step: The steps already taken (the restored step counter).
        fast_forward: True: replay the same stream by skipping the consumed batches;
            False: start a fresh stream seeded ``seed + start_step`` (no reading of
            skipped data).
        batches_per_step: Batches that make one step (gradient accumulation).

    Returns:
        An iterator of distributed batches.
    """
    skipped = int(start_step) * int(batches_per_step)
    if fast_forward or not skipped:
        return iter(distribute(strategy, dataset_fn, seed=seed, skip_steps=skipped))
    return iter(distribute(strategy, dataset_fn, seed=seed + int(start_step)))
