"""The last stage of a train step: the transformed global gradient to the Keras optimizer.

Keras 3 sums the gradients over replicas inside ``optimizer.apply``: the step
hands this stage the global gradient already divided by the replica count
(:func:`tf_bng.distributed.divide_for_keras_sum`), so Keras's sum restores it
exactly. The train metrics are updated by applied steps only, here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

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
        """``optimizer.apply`` of the divided global gradient, then the metrics (given inputs)."""
        self.optimizer.apply(list(grads), self.variables)
        if metric_inputs is not None:
            self.update_metrics(*metric_inputs)
