"""The tf.data plumbing every dataset shares: ordering, sharding, batching.

Design: each dataset yields one *global* stream of examples (shuffled by
``seed`` when training), identical in every input pipeline. A pipeline keeps
the examples whose position inside each global batch falls in its share, so
the union of what all pipelines and replicas see at step ``k`` is exactly the
global batch ``k`` of a single-device run, whatever the number of pipelines
or replicas. Per-example augmentation draws from the stateless seed
``(seed, position)``, so it too is the same in every layout.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

__all__ = [
    "Preprocess",
    "derived_seed",
    "epoch_permutations",
    "indexed_stream",
    "array_stream",
    "batch_stream",
]

# (x, y, seed int64[2]) -> (x, y): one example in, one example out.
Preprocess = Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tuple]
AUTOTUNE = tf.data.AUTOTUNE
_SHUFFLE, _AUGMENT = 0, 1  # purposes: distinct random streams from one seed


def derived_seed(seed, purpose: int, counter) -> tf.Tensor:
    """Stateless seed for ``counter`` (epoch, position) of one ``purpose`` of ``seed``.

    Args:
        seed: The stream's seed (int or int tensor).
        purpose: Which random stream (shuffling, augmentation): distinct purposes give
            independent seeds from one ``seed``.
        counter: The epoch or example position (int or int tensor).

    Returns:
        An int64 ``[2]`` seed for the ``tf.random.stateless_*`` ops.
    """
    base = tf.stack([tf.cast(seed, tf.int64), tf.constant(purpose, tf.int64)])
    return tf.random.experimental.stateless_fold_in(base, tf.cast(counter, tf.int64))


def epoch_permutations(num_examples: int, seed: int) -> tf.data.Dataset:
    """Infinite stream of indices: epoch ``e`` is a permutation drawn from ``(seed, e)``.

    Stateless, so the order depends on ``seed`` only (not on TensorFlow's
    global seed), and a resumed run can recompute any epoch.

    Args:
        num_examples: The size of the split.
        seed: The shuffling seed.

    Returns:
        An endless dataset of int64 indices in ``[0, num_examples)``.
    """

    def one_epoch(epoch):
        keys = tf.random.stateless_uniform([num_examples], seed=derived_seed(seed, _SHUFFLE, epoch))
        return tf.data.Dataset.from_tensor_slices(tf.argsort(keys, stable=True))

    return tf.data.Dataset.counter().flat_map(one_epoch)


def indexed_stream(
    num_examples: int, fetch: Callable[[tf.Tensor], tuple], *, training: bool, seed: int
) -> tf.data.Dataset:
    """Examples ``fetch(i)`` for a random-access dataset: shuffled and endless when training.

    Args:
        num_examples: The size of the split.
        fetch: ``index tensor -> (x, y)``.
        training: True: endless, each epoch a permutation drawn from ``seed``; False:
            one pass in order.
        seed: The shuffling seed.

    Returns:
        The global stream of examples.

    Raises:
        ValueError: If ``num_examples`` is below 1 (an empty split).
    """
    if num_examples < 1:
        raise ValueError("The dataset split is empty.")
    if training:
        indices = epoch_permutations(num_examples, seed)
    else:
        indices = tf.data.Dataset.range(num_examples)
    return indices.map(fetch, num_parallel_calls=AUTOTUNE)


def array_stream(x: np.ndarray, y: np.ndarray, *, training: bool, seed: int) -> tf.data.Dataset:
    """:func:`indexed_stream` over in-memory arrays (rows are examples).

    Args:
        x: The inputs, one row per example.
        y: The labels, one row per example.
        training: See :func:`indexed_stream`.
        seed: The shuffling seed.

    Returns:
        The global stream of ``(x, y)`` examples.

    Raises:
        ValueError: If ``x`` and ``y`` differ in rows, or they are empty.
    """
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} rows but y has {len(y)}.")
    xs, ys = tf.constant(x), tf.constant(y)
    return indexed_stream(
        len(x), lambda i: (tf.gather(xs, i), tf.gather(ys, i)), training=training, seed=seed
    )


def _per_replica_batch_size(global_batch_size: int, input_context) -> int:
    if input_context is None:
        return global_batch_size
    return input_context.get_per_replica_batch_size(global_batch_size)


def batch_stream(
    stream: tf.data.Dataset,
    *,
    global_batch_size: int,
    training: bool,
    seed: int,
    input_context: tf.distribute.InputContext | None = None,
    preprocess: Preprocess | None = None,
) -> tf.data.Dataset:
    """Shard, preprocess, batch and prefetch a global stream of ``(x, y)`` examples.

    Batches hold ``input_context.get_per_replica_batch_size(global_batch_size)``
    examples (the global batch without a context). Training drops the last
    partial batch; evaluation keeps it.

    Args:
        stream: The global stream of ``(x, y)`` examples, the same in every pipeline.
        global_batch_size: Examples per step over all replicas.
        training: Drop the last partial batch (True) or keep it.
        seed: The seed of per-example augmentation, drawn from ``(seed, position)``.
        input_context: This pipeline's place in a distribution strategy; None for one
            pipeline.
        preprocess: ``(x, y, seed) -> (x, y)`` per example; None: none.

    Returns:
        The batched, prefetched dataset of this pipeline.

    Raises:
        ValueError: If ``global_batch_size`` is below 1.
    """
    global_batch_size = int(global_batch_size)
    if global_batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {global_batch_size}.")
    batch_size = _per_replica_batch_size(global_batch_size, input_context)
    positioned = stream.enumerate()
    if input_context is not None and input_context.num_input_pipelines > 1:
        replicas_per_pipeline = (
            input_context.num_replicas_in_sync // input_context.num_input_pipelines
        )
        share = batch_size * replicas_per_pipeline
        pipeline_id = input_context.input_pipeline_id

        def owned(position, example):
            del example
            return (position % global_batch_size) // share == pipeline_id

        positioned = positioned.filter(owned)

    def prepare(position, example):
        x, y = example
        if preprocess is None:
            return x, y
        return preprocess(x, y, derived_seed(seed, _AUGMENT, position))

    batched = positioned.map(prepare, num_parallel_calls=AUTOTUNE).batch(
        batch_size, drop_remainder=training
    )
    return batched.prefetch(AUTOTUNE)
