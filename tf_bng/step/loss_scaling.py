"""Dynamic loss scaling for mixed_float16, done by the train step itself.

Keras's ``LossScaleOptimizer`` puts ``optimizer.apply`` (which calls
``merge_call``) inside a ``cond`` in replica context, which tf.distribute
rejects under ``strategy.run`` on several replicas. The train step therefore
scales the loss, all-reduces and unscales the gradients in the replica, and
decides in cross-replica context whether to run the apply (skipping steps
whose global gradient is not finite). This module holds the scale's state and
arithmetic; :class:`tf_bng.TrainStep` does the control flow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from tf_bng.gradient_transforms import scale_gradient

__all__ = ["DynamicLossScale"]


class DynamicLossScale(tf.Module):
    """The classic dynamic loss scale: halve on overflow, double after a clean run.

    Create it inside ``strategy.scope()`` so its variables are mirrored; it is
    trackable, so a checkpoint of it restores the scale on resume.

    Args:
        initial_scale: The scale of the first step (> 0).
        growth_interval: How many finite steps in a row before the scale grows (>= 1).
        factor: What the scale is multiplied by on growth and divided by on overflow (> 1).
        min_scale: The scale never shrinks below this.
        name: The module's name (its variables' name scope).

    Raises:
        ValueError: ``initial_scale`` <= 0, ``factor`` <= 1 or ``growth_interval`` < 1.
    """

    def __init__(
        self,
        *,
        initial_scale: float = 2.0**15,
        growth_interval: int = 2000,
        factor: float = 2.0,
        min_scale: float = 1.0,
        name: str = "loss_scale",
    ):
        super().__init__(name=name)
        if not initial_scale > 0 or not factor > 1 or growth_interval < 1:
            raise ValueError(
                "Need initial_scale > 0, factor > 1 and growth_interval >= 1; got "
                f"{initial_scale!r}, {factor!r}, {growth_interval!r}."
            )
        self.growth_interval = int(growth_interval)
        self.factor = float(factor)
        self.min_scale = float(min_scale)
        only_first = tf.VariableAggregation.ONLY_FIRST_REPLICA
        self.scale = tf.Variable(
            float(initial_scale),
            dtype=tf.float32,
            trainable=False,
            aggregation=only_first,
            name="scale",
        )
        self.good_steps = tf.Variable(
            0, dtype=tf.int64, trainable=False, aggregation=only_first, name="good_steps"
        )

    def scale_loss(self, loss: tf.Tensor) -> tf.Tensor:
        """Returns ``loss`` times the current loss scale.

        Args:
            loss: The loss to differentiate; the scale is cast to its dtype.

        Returns:
            ``loss * scale``, in ``loss``'s dtype.
        """
        return loss * tf.cast(self.scale, loss.dtype)

    def unscale(self, grads: Sequence[Any]) -> list:
        """Divides each gradient by the current loss scale (``None`` stays ``None``).

        Args:
            grads: Gradients of the scaled loss (tensors, ``tf.IndexedSlices`` or ``None``).

        Returns:
            The gradients of the unscaled loss, as a list.
        """
        inv = 1.0 / tf.convert_to_tensor(self.scale)
        return [None if g is None else scale_gradient(g, inv) for g in grads]

    def update(self, finite: tf.Tensor) -> None:
        """After a step: grow after ``growth_interval`` finite steps, shrink on overflow.

        Args:
            finite: Scalar bool: whether every gradient of the step was finite (the global
                decision, the same on every replica).
        """
        scale = tf.convert_to_tensor(self.scale)
        good = tf.convert_to_tensor(self.good_steps) + 1
        grow = tf.logical_and(finite, good >= self.growth_interval)
        shrunk = tf.maximum(scale / self.factor, self.min_scale)
        self.scale.assign(tf.where(finite, tf.where(grow, scale * self.factor, scale), shrunk))
        self.good_steps.assign(tf.where(tf.logical_and(finite, tf.logical_not(grow)), good, 0))
