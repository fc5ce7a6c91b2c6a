"""The last stage of a train step: the transformed global gradient to the Keras optimizer.

Keras 3 sums the gradients over replicas inside ``optimizer.apply``; the
gradient here is already the global one, identical on every replica, so it
is divided by the replica count first and Keras's sum restores it exactly
(:func:`tf_bng.distributed.divide_for_keras_sum`). The train metrics are
updated by applied steps only, here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from tf_bng import distributed

__all__ = ["ApplyStage"]


class ApplyStage:
    """Applies one update, in a replica, and updates the train metrics.

    Args:
        optimizer: Any Keras 3 optimizer.
        variables: The trainable variables, in the gradients' order.
        metrics: Keras metrics updated with ``(y, predictions, sample_weight)``.
    """

    def __init__(
        self,
        optimizer: keras.optimizers.Optimizer,
        variables: Sequence[Any],
        metrics: Sequence[keras.metrics.Metric] = (),
    ):
        self.optimizer = optimizer
        self.variables = list(variables)
        self.metrics = list(metrics)

    def update_metrics(self, y, pred, sample_weight) -> None:
        for metric in self.metrics:
            metric.update_state(y, pred, sample_weight=sample_weight)

    def __call__(self, grads: Sequence[Any], metric_inputs: tuple | None = None) -> None:
        """``optimizer.apply`` of the global gradient, then the metrics (when given inputs)."""
        self.optimizer.apply(distributed.divide_for_keras_sum(grads), self.variables)
        if metric_inputs is not None:
            self.update_metrics(*metric_inputs)
