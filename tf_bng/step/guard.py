"""Skipping non-finite steps: what the train step counts and what it puts back.

A step whose loss or (all-reduced) gradient is not finite is not applied:
the optimizer (weights, slots, ``iterations``) is left as it was. The
forward pass has already run, though, and it updates state of its own
(BatchNorm moving statistics): :func:`forward_state_variables` lists that
state so the step can snapshot it before the forward pass and put it back
when the step is skipped. :class:`BadStepCounter` keeps the counts the loop
reports (``bad_steps``) and stops on (``train.max_bad_steps``); the
``model.fit`` wrappers count their skipped updates in one too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf

__all__ = [
    "StepGuard",
    "BadStepCounter",
    "forward_state_variables",
    "snapshot",
    "restore",
    "is_float_variable",
    "run_if",
]


def is_float_variable(variable: Any) -> bool:
    return tf.as_dtype(variable.dtype).is_floating


def forward_state_variables(model: Any) -> list:
    """Floating-point non-trainable variables: what a training forward pass may update.

    Integer state (dropout seed generators) is left alone: a skipped step
    still consumes its random draws, which keeps the stream of masks the
    same whatever steps are skipped.
    """
    return [v for v in model.non_trainable_variables if is_float_variable(v)]


def snapshot(variables: Sequence[Any]) -> list:
    """Copies of the variables' current values (read before the forward pass writes them)."""
    return [tf.identity(tf.convert_to_tensor(v)) for v in variables]


def run_if(pred, fn) -> None:
    """``fn()`` (which returns nothing) only when ``pred`` holds, in a graph or eagerly."""

    def run():
        fn()
        return tf.constant(True)

    tf.cond(pred, run, lambda: tf.constant(False))


def restore(variables: Sequence[Any], values: Sequence[Any]) -> None:
    for variable, value in zip(variables, values):
        variable.assign(value)


class BadStepCounter(tf.Module):
    """Counts of skipped steps: in total, and in a row (reset by any applied step).

    Updated with the step's single, all-replica decision (by ``TrainStep`` in
    cross-replica context, by the wrappers in each replica); trackable, so a
    resumed run keeps its counts.
    """

    def __init__(self, name: str = "bad_steps", make_variable=None):
        """Two int64 counters at 0.

        Args:
            name: The module's name.
            make_variable: ``make_variable(name) -> variable`` creates each
                counter (a Keras optimizer passes its ``add_variable``, so
                that they are Keras variables it saves); default a
                ``tf.Variable`` aggregated as ``ONLY_FIRST_REPLICA``.
        """
        super().__init__(name=name)
        if make_variable is None:

            def make_variable(counter: str) -> tf.Variable:
                return tf.Variable(
                    0,
                    dtype=tf.int64,
                    trainable=False,
                    aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
                    name=counter,
                )

        self.total = make_variable("total")
        self.consecutive = make_variable("consecutive")

    def record(self, applied: tf.Tensor) -> None:
        """Counts a step: a skipped one adds to ``total`` and ``consecutive``, an applied one
        resets ``consecutive``.

        Args:
            applied: A boolean scalar, True when the step's update was applied.
        """
        bad = tf.cast(tf.logical_not(applied), tf.int64)
        self.total.assign_add(bad)
        self.consecutive.assign((tf.convert_to_tensor(self.consecutive) + 1) * bad)

    def counts(self) -> tuple[int, int]:
        """``(total, consecutive)`` as Python ints."""
        return int(self.total.numpy()), int(self.consecutive.numpy())


class StepGuard:
    """The step's guard stage: one decision per step, and what a skipped step puts back.

    Create it inside ``strategy.scope()``.

    Args:
        model: The model whose forward state (:func:`forward_state_variables`) a skipped step
            restores.
        enabled: Skip non-finite steps and count them; False: every step is applied.
        not_state: ``id`` of non-trainable variables that are not forward state (backward
            scale factors, which the backward pass sets).
    """

    def __init__(self, model: Any, *, enabled: bool, not_state: frozenset = frozenset()):
        self.enabled = bool(enabled)
        self.forward_state = [v for v in forward_state_variables(model) if id(v) not in not_state]
        self.bad_steps = BadStepCounter() if self.enabled else None

    def snapshot(self) -> list:
        """The forward state before this replica's forward pass (empty when off)."""
        return snapshot(self.forward_state) if self.enabled else []

    def apply_or_skip(self, finite: tf.Tensor, apply: Callable, skip: Callable) -> tf.Tensor:
        """Cross-replica: ``apply()`` when ``finite`` (or when off), else ``skip()``; counted.

        Returns:
            Whether the update was applied.
        """
        if not self.enabled:
            apply()
            return tf.constant(True)

        def applied():
            apply()
            return tf.constant(True)

        def skipped():
            skip()
            return tf.constant(False)

        tf.cond(finite, applied, skipped)
        self.bad_steps.record(finite)
        return finite

    def counts(self) -> tuple[tf.Tensor, tf.Tensor]:
        """``(total, in a row)`` as int64 tensors (zeros when off)."""
        if self.bad_steps is None:
            zero = tf.constant(0, tf.int64)
            return zero, zero
        return (
            tf.convert_to_tensor(self.bad_steps.total),
            tf.convert_to_tensor(self.bad_steps.consecutive),
        )
