"""One pass of evaluation over a distributed dataset: loss and accuracy as exact sums.

Sums (not per-batch means) make a partial last batch, or a replica that gets
no data from it, count exactly right. The loss is the data loss of the
train step's loss function, without regularization terms.
"""

from __future__ import annotations

import math

import tensorflow as tf

from tf_bng.step.batches import to_float32, unpack_batch
from tf_bng.step.train_step import TrainStep

__all__ = ["EvalStep"]

_WITH_ACCURACY = ("classification", "language_model")
TASKS = ("classification", "language_model", "quadratic")  # "quadratic": loss only


class EvalStep:
    """``evaluate(distributed_dataset) -> {"loss", "accuracy"/"perplexity"}`` for ``task``.

    Args:
        train_step: The step whose model, strategy and per-example loss are evaluated.
        task: One of ``"classification"``, ``"language_model"`` (accuracy and perplexity too)
            or ``"quadratic"`` (loss only).

    Raises:
        ValueError: An unknown ``task``; the message names the valid ones.
    """

    def __init__(self, train_step: TrainStep, *, task: str):
        if task not in TASKS:
            raise ValueError(f"Unknown task {task!r}. Valid tasks: {', '.join(TASKS)}.")
        self.model = train_step.model
        self.strategy = train_step.strategy
        self.task = task
        self._loss_fn = train_step.gradients.per_example_loss
        self._sums = tf.function(self._distributed_sums)

    def _replica_sums(self, batch):
        x, y, weight = unpack_batch(batch)
        pred = to_float32(self.model(x, training=False))
        per_example = self._loss_fn(y, pred)
        weight = tf.ones_like(per_example) if weight is None else tf.cast(weight, per_example.dtype)
        if self.task in _WITH_ACCURACY:
            labels = tf.reshape(tf.cast(y, tf.int64), tf.shape(pred)[:-1])
            hits = tf.cast(tf.equal(tf.argmax(pred, axis=-1), labels), tf.float32)
            if hits.shape.rank > 1:  # tokens of a sequence: per-example mean
                hits = tf.reduce_mean(hits, axis=list(range(1, hits.shape.rank)))
        else:
            hits = tf.zeros_like(per_example)
        return tf.stack(
            [
                tf.reduce_sum(per_example * weight),
                tf.reduce_sum(weight),
                tf.reduce_sum(hits * weight),
            ]
        )

    def _distributed_sums(self, dataset):
        totals = tf.zeros([3], tf.float32)
        for batch in dataset:
            sums = self.strategy.run(self._replica_sums, args=(batch,))
            totals += self.strategy.reduce(tf.distribute.ReduceOp.SUM, sums, axis=None)
        return totals

    def evaluate(self, dataset) -> dict:
        """Mean loss (and accuracy, perplexity where the task has them) over ``dataset``.

        Args:
            dataset: A ``tf.data.Dataset`` of evaluation batches.

        Returns:
            ``{"loss": ...}``, plus ``"accuracy"`` for classification and language models and
            ``"perplexity"`` for language models.

        Raises:
            ValueError: If the dataset holds no examples.
        """
        loss_sum, count, hits = (float(v) for v in self._sums(dataset).numpy())
        if not count:
            raise ValueError("The evaluation dataset is empty.")
        results = {"loss": loss_sum / count}
        if self.task in _WITH_ACCURACY:
            results["accuracy"] = hits / count
        if self.task == "language_model":
            results["perplexity"] = math.exp(min(results["loss"], 700.0))
        return results
