"""Gradient accumulation state for :class:`~tf_bng.TrainStep`: k micro-batches, one update.

Each replica sums its own micro-batch gradients into local buffers
(``SyncOnRead`` variables: no communication per micro-batch); at the end of
the window the buffers are all-reduced once, divided by k and handed to the
block transform, so NG, NGadap and clipping see the gradient of the whole
k-times larger batch. Buffers are float32 (the variables' dtype; float16
would overflow the sum). The forward-pass state (BatchNorm statistics) is
snapshotted at the start of each window so that a skipped window can put
back what all its micro-batches wrote.

All of it is trackable: a checkpoint taken mid-window resumes mid-window. A
``SyncOnRead`` buffer with SUM aggregation is saved as the sum over replicas
and restored split evenly among them; the all-reduce at the window's end
only sees the sum, so the update is the same up to float rounding (exact on
one device).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf

__all__ = ["GradientAccumulator"]


def _dense(grad) -> tf.Tensor:
    return tf.convert_to_tensor(grad)


class GradientAccumulator(tf.Module):
    """Per-replica gradient sums over a window of ``steps`` micro-batches.

    Create it inside ``strategy.scope()``. ``count`` (micro-batches in the
    current window) is a cross-replica variable; ``add``, ``mean_local`` and
    ``reset`` run in replica context.
    """

    def __init__(
        self,
        variables: Sequence[Any],
        steps: int,
        forward_state: Sequence[Any] = (),
        *,
        with_reference: bool = False,
    ):
        super().__init__(name="gradient_accumulator")
        if int(steps) < 2:
            raise ValueError(f"GradientAccumulator needs steps >= 2, got {steps}.")
        self.steps = int(steps)
        on_read = dict(
            synchronization=tf.VariableSynchronization.ON_READ,
            trainable=False,
        )
        self.buffers = [
            tf.Variable(
                tf.zeros(v.shape, tf.float32),
                aggregation=tf.VariableAggregation.SUM,
                name=f"grad_sum_{i}",
                **on_read,
            )
            for i, v in enumerate(variables)
        ]
        self.count = tf.Variable(
            0,
            dtype=tf.int64,
            trainable=False,
            name="micro_steps",
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )
        # The state of the forward pass at the window's start (identical on every replica).
        self.window_start_state = [
            tf.Variable(
                tf.convert_to_tensor(v),
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
                name=f"window_start_{i}",
                **on_read,
            )
            for i, v in enumerate(forward_state)
        ]
        # Backward scaling: per variable, the log2 factor the window's sums carry.
        self.reference = tf.Variable(
            tf.zeros([len(variables) if with_reference else 0]),
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
            name="window_log2_factor",
            **on_read,
        )
        self.window_loss_finite = tf.Variable(
            True,
            trainable=False,
            name="window_loss_finite",
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )

    def add(self, grads: Sequence[Any], factors: tf.Tensor | None = None) -> None:
        """Add one micro-batch's local gradients (None: nothing to add), each times
        ``factors[i]`` when given: in float32, after the cast, so a float16
        gradient's shift cannot overflow in its own type."""
        for i, (buffer, grad) in enumerate(zip(self.buffers, grads)):
            if grad is not None:
                value = tf.cast(_dense(grad), tf.float32)
                buffer.assign_add(value if factors is None else value * factors[i])

    def local_sums(self, like: Sequence[Any]) -> list:
        """This replica's sums, in the dtypes of ``like`` (None where ``like`` is None)."""
        return [
            None if g is None else tf.cast(tf.convert_to_tensor(b), tf.as_dtype(g.dtype))
            for b, g in zip(self.buffers, like)
        ]

    def reset(self) -> None:
        for buffer in self.buffers:
            buffer.assign(tf.zeros_like(buffer))

    def save_window_start(self, forward_state: Sequence[Any]) -> None:
        for copy, variable in zip(self.window_start_state, forward_state):
            copy.assign(tf.convert_to_tensor(variable))

    def restore_window_start(self, forward_state: Sequence[Any]) -> None:
        for copy, variable in zip(self.window_start_state, forward_state):
            variable.assign(tf.convert_to_tensor(copy))
