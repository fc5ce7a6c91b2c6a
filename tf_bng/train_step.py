"""The distributed train step: tape -> all-reduce -> block transform -> apply.

Orbit-style: :class:`TrainStep` owns one replica step and exposes two compiled
entry points, ``step(batch)`` for one distributed batch and
``loop(iterator, num_steps)`` running several steps inside one ``tf.function``
call (fewer Python round trips).
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Union

import keras
import tensorflow as tf

from tf_bng import distributed
from tf_bng.losses import per_example_loss_fn
from tf_bng.transforms import BlockTransform, TransformConfig

__all__ = ["TrainStep", "make_train_step"]


def _unpack(batch):
    if isinstance(batch, dict):
        return batch["x"], batch["y"], batch.get("sample_weight")
    if isinstance(batch, (tuple, list)):
        if len(batch) == 2:
            return batch[0], batch[1], None
        if len(batch) == 3:
            return tuple(batch)
    raise ValueError("A batch must be (x, y), (x, y, sample_weight) or a dict with 'x' and 'y'.")


class TrainStep:
    """A compiled training step for ``model`` under ``strategy``.

    Returns ``(mean_loss, block_norms)`` where ``block_norms[i]`` is the norm
    of block ``self.block_names[i]`` of the global gradient *before* the
    transform (empty when ``report_norms`` is False and the transform does
    not compute norms anyway).
    """

    def __init__(
        self,
        *,
        model: keras.Model,
        loss: Any,
        optimizer: keras.optimizers.Optimizer,
        transform: Union[TransformConfig, BlockTransform, str, None] = None,
        global_batch_size: int,
        strategy: Optional[tf.distribute.Strategy] = None,
        metrics: Sequence[keras.metrics.Metric] = (),
        report_norms: bool = True,
        jit_compile: bool = False,
    ):
        self.model = model
        self.optimizer = optimizer
        self.strategy = strategy or tf.distribute.get_strategy()
        self.global_batch_size = int(global_batch_size)
        self.metrics = list(metrics)
        self.report_norms = report_norms
        self._loss_fn = per_example_loss_fn(loss)
        if transform is None or isinstance(transform, str):
            transform = TransformConfig(transform=transform or "none")
        if isinstance(transform, TransformConfig):
            transform = BlockTransform(transform)
        self.transform = transform

        replicas = self.strategy.num_replicas_in_sync
        if self.global_batch_size % replicas:
            raise ValueError(
                f"Global batch size {self.global_batch_size} is not divisible by the "
                f"{replicas} replicas of {type(self.strategy).__name__}."
            )
        if replicas > 1:
            for attr in ("clipnorm", "global_clipnorm", "clipvalue"):
                if getattr(optimizer, attr, None):
                    raise ValueError(
                        f"optimizer.{attr} is set: Keras 3 clips each replica's gradient before "
                        "summing them, which is wrong under a multi-replica strategy. Use "
                        "transform='clip' or 'global_clip' instead."
                    )
        if not model.built:
            raise ValueError("Build the model (call it once or give it an Input) before the step.")
        with self.strategy.scope():
            if not optimizer.built:
                optimizer.build(model.trainable_variables)
        self.block_names = self.transform.partition(model.trainable_variables).names
        self.step = tf.function(self._distributed_step, jit_compile=jit_compile)
        self.loop = tf.function(self._distributed_loop)

    # -- replica computation -------------------------------------------------
    def compute_loss(self, x, y, sample_weight, training: bool = True):
        pred = self.model(x, training=training)
        per_example = self._loss_fn(y, pred)
        loss = tf.nn.compute_average_loss(
            per_example, sample_weight=sample_weight, global_batch_size=self.global_batch_size
        )
        if self.model.losses:
            reg = tf.add_n([tf.cast(l, loss.dtype) for l in self.model.losses])
            loss += tf.nn.scale_regularization_loss(reg)
        return loss, pred

    def replica_step(self, batch):
        x, y, sample_weight = _unpack(batch)
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            loss, pred = self.compute_loss(x, y, sample_weight)
        grads = tape.gradient(loss, variables)
        grads = distributed.sum_over_replicas(grads)
        grads, norms = self.transform(grads, variables, with_norms=self.report_norms)
        grads = distributed.divide_for_keras_sum(grads)
        self.optimizer.apply(grads, variables)
        for metric in self.metrics:
            metric.update_state(y, pred, sample_weight=sample_weight)
        if norms is None:
            norms = tf.zeros([0], tf.float32)
        return loss, norms

    # -- compiled entry points ----------------------------------------------
    def _reduce(self, loss, norms):
        loss = self.strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)
        # Every replica holds the same (all-reduced) norms: take the first.
        norms = self.strategy.experimental_local_results(norms)[0]
        return loss, norms

    def _distributed_step(self, batch):
        loss, norms = self.strategy.run(self.replica_step, args=(batch,))
        return self._reduce(loss, norms)

    def _distributed_loop(self, iterator, num_steps):
        loss, norms = self._distributed_step(next(iterator))
        for _ in tf.range(num_steps - 1):
            loss, norms = self._distributed_step(next(iterator))
        return loss, norms


def make_train_step(**kwargs) -> TrainStep:
    """Build a :class:`TrainStep` (keyword-only, same arguments)."""
    return TrainStep(**kwargs)
