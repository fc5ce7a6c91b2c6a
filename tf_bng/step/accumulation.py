"""Gradient accumulation: k micro-batches, one update from their mean.

One accumulator serves :class:`~tf_bng.TrainStep` and the ``model.fit``
wrappers. :class:`GradientAccumulator` holds one sum per variable and the
count of micro-batches in the window; its owner says how its variables are
made (``tf.Variable`` for the step, the optimizer's ``add_variable`` for a
wrapper, so that ``.keras`` files hold them). Sums are kept in float32 or
the variable's dtype when wider (float16 sums would overflow).

:class:`AccumulationWindow` adds what the step's guard and backward scaling
need across a window: the forward-pass state at the window's start (a
skipped window puts back what all its micro-batches wrote), whether every
micro-batch loss was finite, and the window's common power-of-two factor.

Under ``tf.distribute`` the step's sums are ``SyncOnRead`` variables: each
replica adds its own micro-batches with no communication, and the sums are
all-reduced once at the window's end. A checkpoint taken mid-window saves
the sum over replicas and restores it split evenly; the all-reduce only sees
the sum, so the update is the same up to float rounding (exact on one device).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf

__all__ = [
    "GradientAccumulator",
    "AccumulationWindow",
    "MakeVariable",
    "checked_accumulation_steps",
]

MakeVariable = Callable[..., Any]
"""``make_variable(name, shape, dtype, per_replica) -> variable``: how an accumulator's
variables are created (``per_replica``: a sum each replica keeps on its own)."""


def _tf_variable(name: str, shape, dtype, per_replica: bool) -> tf.Variable:
    if per_replica:
        return tf.Variable(
            tf.zeros(shape, dtype),
            trainable=False,
            synchronization=tf.VariableSynchronization.ON_READ,
            aggregation=tf.VariableAggregation.SUM,
            name=name,
        )
    return tf.Variable(
        tf.zeros(shape, dtype),
        trainable=False,
        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        name=name,
    )


def checked_accumulation_steps(steps: Any) -> int:
    """``steps`` as an int >= 1 (1: no accumulation), for the step and the wrappers alike."""
    if isinstance(steps, bool) or int(steps) != steps:
        raise ValueError(f"accumulation_steps must be an integer, got {steps!r}.")
    if int(steps) < 1:
        raise ValueError(f"accumulation_steps must be >= 1, got {steps}.")
    return int(steps)


def _sum_dtype(variable: Any) -> tf.DType:
    """float32, or the variable's own float dtype when it is wider."""
    dtype = tf.as_dtype(variable.dtype)
    return dtype if dtype.is_floating and dtype.size > 4 else tf.float32


class GradientAccumulator(tf.Module):
    """Per-variable gradient sums over a window of ``steps`` micro-batches.

    Args:
        variables: The variables whose gradients are summed, in order.
        steps: Micro-batches per window (>= 2).
        make_variable: How the variables are made (see :data:`MakeVariable`); default
            ``tf.Variable``, per-replica sums under ``tf.distribute``. The count is made
            first, then one sum per variable.
        name: The module's name.

    Raises:
        ValueError: ``steps`` < 2.
    """

    def __init__(
        self,
        variables: Sequence[Any],
        steps: int,
        *,
        make_variable: MakeVariable | None = None,
        name: str = "gradient_accumulator",
    ):
        super().__init__(name=name)
        if int(steps) < 2:
            raise ValueError(f"Accumulation needs steps >= 2 micro-batches, got {steps}.")
        make_variable = make_variable or _tf_variable
        self.steps = int(steps)
        self.count = make_variable("micro_steps", (), tf.int64, False)
        self.buffers = [
            make_variable(f"grad_sum_{i}", v.shape, _sum_dtype(v), True)
            for i, v in enumerate(variables)
        ]

    def add(self, grads: Sequence[Any], factors: tf.Tensor | None = None) -> None:
        """Adds one micro-batch's gradients, in the sums' dtype (a float16 gradient's shift
        cannot overflow there).

        Args:
            grads: One gradient per variable (None adds nothing).
            factors: Per variable, a factor to multiply by first (backward scaling), or None.
        """
        for i, (buffer, grad) in enumerate(zip(self.buffers, grads)):
            if grad is not None:
                value = tf.cast(tf.convert_to_tensor(grad), buffer.dtype)
                buffer.assign_add(value if factors is None else value * factors[i])

    def local_means(self, like: Sequence[Any]) -> list:
        """This replica's sums divided by ``steps``: in the sums' dtype, then cast.

        Dividing before the cast keeps a float16 mean finite where the sum of k float16
        gradients would not be (all-reducing the means gives the global mean).

        Args:
            like: Per variable, something with the dtype to return (None: no gradient).

        Returns:
            The means in those dtypes, None where ``like`` is None.
        """
        inv_steps = 1.0 / self.steps
        return [
            None
            if g is None
            else tf.cast(tf.convert_to_tensor(b) * tf.constant(inv_steps, b.dtype), g.dtype)
            for b, g in zip(self.buffers, like)
        ]

    def reset(self) -> None:
        """Zeroes the sums (the count is the owner's: it is cross-replica state)."""
        for buffer in self.buffers:
            buffer.assign(tf.zeros_like(buffer))


class AccumulationWindow(GradientAccumulator):
    """The step's accumulator: the sums plus the window state its guard and backward scaling use.

    Create it inside ``strategy.scope()``.

    Args:
        variables: The trainable variables, in order.
        steps: Micro-batches per window (>= 2).
        forward_state: The variables a forward pass writes (BatchNorm statistics).
        with_reference: Keep a per-variable log2 factor (backward scaling).
    """

    def __init__(
        self,
        variables: Sequence[Any],
        steps: int,
        forward_state: Sequence[Any] = (),
        *,
        with_reference: bool = False,
    ):
        super().__init__(variables, steps)
        on_read = dict(
            synchronization=tf.VariableSynchronization.ON_READ,
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
            trainable=False,
        )
        # The same on every replica: ONLY_FIRST_REPLICA saves one copy.
        self.window_start_state = [
            tf.Variable(tf.convert_to_tensor(v), name=f"window_start_{i}", **on_read)
            for i, v in enumerate(forward_state)
        ]
        self.reference = tf.Variable(
            tf.zeros([len(variables) if with_reference else 0]),
            name="window_log2_factor",
            **on_read,
        )
        self.window_loss_finite = tf.Variable(
            True,
            trainable=False,
            name="window_loss_finite",
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )

    def save_window_start(self, forward_state: Sequence[Any]) -> None:
        for copy, variable in zip(self.window_start_state, forward_state):
            copy.assign(tf.convert_to_tensor(variable))

    def restore_window_start(self, forward_state: Sequence[Any]) -> None:
        for copy, variable in zip(self.window_start_state, forward_state):
            variable.assign(tf.convert_to_tensor(copy))

    def next_window(self) -> None:
        """Cross-replica, after every replica's ``reset``: the next window starts empty."""
        self.count.assign(0)
        self.window_loss_finite.assign(True)
