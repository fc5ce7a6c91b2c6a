"""Cross-replica helpers for transforming the *global* gradient.

Keras 3 all-reduces (sums) gradients inside ``optimizer.apply`` after its own
clipping, so a nonlinear transform there would see per-replica gradients. We
sum first, transform, then divide by the replica count: Keras's own sum of the
identical copies restores the transformed global gradient exactly. The test
suite guards the assumption that Keras keeps summing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf

__all__ = ["num_replicas", "sum_over_replicas", "divide_for_keras_sum", "in_multi_replica_context"]


def num_replicas() -> int:
    """The replicas in sync of the current replica context (or of the current strategy)."""
    ctx = tf.distribute.get_replica_context()
    if ctx is None:  # cross-replica context
        return tf.distribute.get_strategy().num_replicas_in_sync
    return ctx.num_replicas_in_sync


def in_multi_replica_context() -> bool:
    """Whether this code runs in a replica context of more than one replica."""
    ctx = tf.distribute.get_replica_context()
    return ctx is not None and ctx.num_replicas_in_sync > 1


def sum_over_replicas(grads: Sequence[Any]) -> list:
    """All-reduce(SUM) the non-None gradients; identity with a single replica.

    Args:
        grads: Per-replica gradients (``None`` entries stay ``None``), in a replica
            context.

    Returns:
        A new list: the sums over replicas, identical on every replica.
    """
    grads = list(grads)
    if not in_multi_replica_context():
        return grads
    present = [i for i, g in enumerate(grads) if g is not None]
    if not present:
        return grads
    reduced = tf.distribute.get_replica_context().all_reduce(
        tf.distribute.ReduceOp.SUM, [grads[i] for i in present]
    )
    for i, g in zip(present, reduced):
        grads[i] = g
    return grads


def divide_for_keras_sum(grads: Sequence[Any]) -> list:
    """Divide global gradients by the replica count before ``optimizer.apply``.

    Keras sums the gradients over replicas inside ``apply``: the identical
    divided copies then sum back to the global gradient.

    Args:
        grads: Gradients already summed over replicas (``None`` entries stay ``None``).

    Returns:
        A new list of the gradients divided by the number of replicas (the same list's
        contents with one replica).
    """
    n = num_replicas() if in_multi_replica_context() else 1
    if n == 1:
        return list(grads)
    from tf_bng.gradient_transforms import scale_gradient

    inv = 1.0 / n
    return [None if g is None else scale_gradient(g, tf.constant(inv)) for g in grads]
