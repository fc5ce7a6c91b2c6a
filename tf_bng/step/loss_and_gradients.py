"""Stage 1 of a train step, in one replica: forward pass, loss over the global batch, gradient.

The loss is summed per example and divided by the *global* batch size
(``tf.nn.compute_average_loss``), so the replicas' gradients sum to the
gradient of the global batch's mean loss; regularization losses are divided
by the replica count for the same reason. With a loss scale the tape
differentiates the scaled loss; unscaling is a later stage (after the
all-reduce, or before accumulating).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import keras
import tensorflow as tf

from tf_bng.losses import per_example_loss_fn
from tf_bng.step.batches import to_float32, unpack_batch
from tf_bng.step.loss_scaling import DynamicLossScale

__all__ = ["LossAndGradients", "ReplicaGradients"]


class ReplicaGradients(NamedTuple):
    """One replica's share of a step, before anything is reduced.

    Attributes:
        loss: This replica's share of the global mean loss (unscaled).
        grads: One gradient per trainable variable (of the scaled loss under loss scaling).
        metric_inputs: ``(y, predictions, sample_weight)`` for the train metrics.
    """

    loss: tf.Tensor
    grads: list
    metric_inputs: tuple


class LossAndGradients:
    """The loss and its gradient for one replica's part of a batch.

    Args:
        model: The model whose ``trainable_variables`` are differentiated and whose
            ``losses`` are added.
        loss: A Keras loss name, ``keras.losses.Loss`` or ``(y_true, y_pred) -> values``.
        global_batch_size: Examples per step over all replicas (the loss's divisor).
        forward_model: What the forward pass calls (default ``model``; backward scaling
            passes the copy with scale points, which shares ``model``'s variables).
        loss_scale: A :class:`~tf_bng.step.DynamicLossScale`, or None.

    Raises:
        TypeError: ``loss`` is not a loss.
    """

    def __init__(
        self,
        *,
        model: keras.Model,
        loss: Any,
        global_batch_size: int,
        forward_model: keras.Model | None = None,
        loss_scale: DynamicLossScale | None = None,
    ):
        self.model = model
        self.forward_model = forward_model or model
        self.per_example_loss = per_example_loss_fn(loss)
        self.global_batch_size = global_batch_size
        self.loss_scale = loss_scale

    def loss(self, x, y, sample_weight, training: bool = True):
        """``(loss, predictions)``: the replica's share of the mean loss plus the model's losses.

        Args:
            x: The replica's inputs.
            y: The replica's targets.
            sample_weight: Per-example weights, or ``None``.
            training: Passed to the model (dropout, BatchNorm).
        """
        pred = self.forward_model(x, training=training)
        per_example = self.per_example_loss(y, to_float32(pred))
        loss = tf.nn.compute_average_loss(
            per_example, sample_weight=sample_weight, global_batch_size=self.global_batch_size
        )
        if self.model.losses:
            reg = tf.add_n([tf.cast(term, loss.dtype) for term in self.model.losses])
            loss += tf.nn.scale_regularization_loss(reg)
        return loss, pred

    def __call__(self, batch) -> ReplicaGradients:
        """The replica's loss, gradients and metric inputs for its part of ``batch``."""
        x, y, sample_weight = unpack_batch(batch)
        with tf.GradientTape() as tape:
            loss, pred = self.loss(x, y, sample_weight)
            scaled = loss if self.loss_scale is None else self.loss_scale.scale_loss(loss)
        grads = tape.gradient(scaled, self.model.trainable_variables)
        return ReplicaGradients(loss, list(grads), (y, pred, sample_weight))
