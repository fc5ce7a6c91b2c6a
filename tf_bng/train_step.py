"""The distributed train step: tape -> all-reduce -> block transform -> apply.

Orbit-style: :class:`TrainStep` owns one replica step and exposes two compiled
entry points, ``step(batch)`` for one distributed batch and
``loop(iterator, num_steps)`` running several steps inside one ``tf.function``
call (fewer Python round trips).

With a :class:`~tf_bng.training.loss_scaling.DynamicLossScale` (mixed_float16)
the step runs in two phases: the replicas compute, all-reduce, unscale and
transform the gradients; then, in cross-replica context, a ``cond`` runs the
apply only when the global gradient is finite (``optimizer.apply`` calls
``merge_call``, which a ``cond`` inside ``strategy.run`` does not allow).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import keras
import tensorflow as tf

from tf_bng import distributed
from tf_bng.losses import per_example_loss_fn
from tf_bng.training.loss_scaling import DynamicLossScale, all_finite
from tf_bng.transforms import BlockTransform, TransformConfig

__all__ = ["TrainStep", "make_train_step", "unpack_batch", "to_float32"]


def unpack_batch(batch):
    """``(x, y, sample_weight or None)`` of a batch given as a tuple or a dict."""
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
    not compute norms anyway). ``loop`` returns the last step's pair.

    ``running_loss`` averages the losses of every step since its last
    ``reset()`` (a training log wants the mean over the logging window, not
    the last batch). ``loss_scale`` turns on mixed_float16 loss scaling with
    non-finite steps skipped (see the module docstring).
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
        loss_scale: Optional[DynamicLossScale] = None,
    ):
        self.model = model
        self.optimizer = optimizer
        self.strategy = strategy or tf.distribute.get_strategy()
        self.global_batch_size = int(global_batch_size)
        self.metrics = list(metrics)
        self.report_norms = report_norms
        self.loss_scale = loss_scale
        self._loss_fn = per_example_loss_fn(loss)
        self.per_example_loss = self._loss_fn  # (y, pred) -> [batch], for evaluation
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
            self.running_loss = _RunningMean()
        self.block_names = self.transform.partition(model.trainable_variables).names
        self.step = tf.function(self._distributed_step, jit_compile=jit_compile)
        self.loop = tf.function(self._distributed_loop)

    # -- replica computation -------------------------------------------------
    def compute_loss(self, x, y, sample_weight, training: bool = True):
        pred = self.model(x, training=training)
        per_example = self._loss_fn(y, to_float32(pred))
        loss = tf.nn.compute_average_loss(
            per_example, sample_weight=sample_weight, global_batch_size=self.global_batch_size
        )
        if self.model.losses:
            reg = tf.add_n([tf.cast(l, loss.dtype) for l in self.model.losses])
            loss += tf.nn.scale_regularization_loss(reg)
        return loss, pred

    def _global_gradients(self, batch):
        """Loss, then the transformed global gradient (divided for Keras's sum) and its norms."""
        x, y, sample_weight = unpack_batch(batch)
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            loss, pred = self.compute_loss(x, y, sample_weight)
            scaled = loss if self.loss_scale is None else self.loss_scale.scale_loss(loss)
        grads = tape.gradient(scaled, variables)
        grads = distributed.sum_over_replicas(grads)
        if self.loss_scale is not None:
            grads = self.loss_scale.unscale(grads)
        finite = all_finite(grads) if self.loss_scale is not None else None
        grads, norms = self.transform(grads, variables, with_norms=self.report_norms)
        grads = distributed.divide_for_keras_sum(grads)
        for metric in self.metrics:
            metric.update_state(y, pred, sample_weight=sample_weight)
        if norms is None:
            norms = tf.zeros([0], tf.float32)
        return loss, norms, grads, finite

    def _apply(self, grads):
        self.optimizer.apply(grads, self.model.trainable_variables)

    def replica_step(self, batch):
        loss, norms, grads, _ = self._global_gradients(batch)
        self._apply(grads)
        return loss, norms

    # -- compiled entry points ----------------------------------------------
    def _reduce(self, loss, norms):
        loss = self.strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)
        # Every replica holds the same (all-reduced) norms: take the first.
        norms = self.strategy.experimental_local_results(norms)[0]
        return loss, norms

    def _distributed_step(self, batch):
        if self.loss_scale is None:
            loss, norms = self.strategy.run(self.replica_step, args=(batch,))
        else:
            loss, norms = self._loss_scaled_step(batch)
        loss, norms = self._reduce(loss, norms)
        self.running_loss.update(loss)
        return loss, norms

    def _loss_scaled_step(self, batch):
        loss, norms, grads, finite = self.strategy.run(self._global_gradients, args=(batch,))
        # Every replica saw the same all-reduced gradient: its flag is everyone's.
        finite = self.strategy.experimental_local_results(finite)[0]
        tf.cond(finite, lambda: self.strategy.run(self._apply, args=(grads,)), lambda: None)
        self.loss_scale.update(finite)
        return loss, norms

    def _distributed_loop(self, iterator, num_steps):
        loss, norms = self._distributed_step(next(iterator))
        for _ in tf.range(num_steps - 1):
            loss, norms = self._distributed_step(next(iterator))
        return loss, norms


def to_float32(pred):
    """Losses of float16/bfloat16 outputs (mixed precision) are computed in float32."""
    dtype = getattr(pred, "dtype", None)
    if dtype is not None and tf.as_dtype(dtype) in (tf.float16, tf.bfloat16):
        return tf.cast(pred, tf.float32)
    return pred


class _RunningMean:
    """Mean of the step losses since the last ``reset``: what a training log reports.

    Updated in cross-replica context with the already reduced loss, so its
    variables need no aggregation.
    """

    def __init__(self):
        self.total = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="loss_total")
        self.count = tf.Variable(0, dtype=tf.int64, trainable=False, name="loss_count")

    def update(self, loss):
        self.total.assign_add(tf.cast(loss, tf.float64))
        self.count.assign_add(1)

    def result(self) -> float:
        count = int(self.count.numpy())
        return float(self.total.numpy()) / count if count else float("nan")

    def reset(self) -> None:
        self.total.assign(0.0)
        self.count.assign(0)


def make_train_step(**kwargs) -> TrainStep:
    """Build a :class:`TrainStep` (keyword-only, same arguments)."""
    return TrainStep(**kwargs)
