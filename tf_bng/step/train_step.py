"""The distributed train step: tape -> all-reduce -> block transform -> apply.

Orbit-style: :class:`TrainStep` owns one replica step and exposes two compiled
entry points, ``step(batch)`` for one distributed batch and
``loop(iterator, num_steps)`` running several steps inside one ``tf.function``
call (fewer Python round trips).

By default (``skip_nonfinite=True``) the step runs in two phases: the
replicas compute, all-reduce, (unscale) and transform the gradients; then, in
cross-replica context, a ``cond`` runs the apply only when the summed loss
and the global gradient are finite, so every replica takes the same decision
(``optimizer.apply`` calls ``merge_call``, which a ``cond`` inside
``strategy.run`` does not allow). A skipped step leaves the optimizer
untouched, puts back the state the forward pass wrote (BatchNorm statistics)
and is counted in :attr:`TrainStep.bad_steps`. With a
:class:`~tf_bng.step.loss_scaling.DynamicLossScale` (mixed_float16) the
same decision also drives the loss scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf
from absl import logging

from tf_bng import backward_scaling as backward_scaling_lib
from tf_bng import distributed
from tf_bng.gradient_transforms import GradientTransform, all_finite, scale_gradient
from tf_bng.losses import per_example_loss_fn
from tf_bng.step import guard as step_guard
from tf_bng.step.accumulation import GradientAccumulator
from tf_bng.step.batches import to_float32, unpack_batch
from tf_bng.step.loss_scaling import DynamicLossScale
from tf_bng.transforms import BlockTransform, TransformConfig

__all__ = ["TrainStep"]


class TrainStep:
    """A compiled training step for ``model`` under ``strategy``.

    Returns ``(mean_loss, block_norms)`` where ``block_norms[i]`` is the norm
    of block ``self.block_names[i]`` of the global gradient *before* the
    transform (empty when ``report_norms`` is False and the transform does
    not compute norms anyway). ``loop`` returns the last step's pair.

    ``running_loss`` averages the losses of the applied steps since its last
    ``reset()`` (a training log wants the mean over the logging window, not
    the last batch). ``skip_nonfinite`` (default on) skips steps with a
    non-finite loss or gradient and counts them in ``bad_steps`` (a
    :class:`~tf_bng.step.guard.BadStepCounter`, None when off);
    ``loss_scale`` turns on mixed_float16 loss scaling, which always skips.
    Train ``metrics`` are updated by applied steps only.

    ``accumulation_steps=k`` (> 1): each ``step(batch)`` call consumes one
    micro-batch of ``global_batch_size`` examples and every k-th call
    applies one update computed from the *mean* of the k micro-batch
    gradients, all-reduced once, then transformed, then applied; ``loop(it,
    n)`` runs n updates (n*k micro-batches). ``step()`` then returns the
    micro-batch's loss and the block norms of the last applied update; the
    non-finite guard judges the accumulated gradient (a skipped window puts
    back the forward state of all its micro-batches); metrics count every
    micro-batch. Costs one float32 buffer per variable (the gradient's size).

    ``last_scales`` holds, per block, the factor the last applied update
    multiplied the block's gradient by (NGadap's trust ratio, a clip's
    factor): the ``scale/<block>`` the training log writes.

    ``backward_scaling=True`` (``ng`` / ``ng_adap`` only) trains a copy of
    the model's graph with :class:`~tf_bng.BackwardScale` points inserted
    where every path passes (see :mod:`tf_bng.backward_scaling`): the
    backprop signal is multiplied by powers of two that keep it inside the
    float range, which leaves NG's update unchanged. Norms and scales are
    reported as the true ones; ``last_log10_norms`` holds their log10, which
    stays finite where the norm itself leaves float32's range.

    Args:
        model: A built Keras model (called once, or given an Input).
        loss: A Keras loss name, ``keras.losses.Loss`` or ``(y_true, y_pred) -> values``; it
            is summed per example and divided by ``global_batch_size``.
        optimizer: The Keras optimizer that applies the transformed gradient.
        transform: A name of :data:`tf_bng.TRANSFORMS`, a :class:`~tf_bng.TransformConfig`,
            a :class:`~tf_bng.BlockTransform` or any composed
            :class:`~tf_bng.gradient_transforms.GradientTransform`; None: ``"none"``.
        global_batch_size: Examples per step over all replicas (a multiple of their number).
        strategy: The ``tf.distribute`` strategy; default: the current one.
        metrics: Keras metrics updated with ``(y, pred, sample_weight)`` by applied steps.
        report_norms: Whether the step returns the block norms.
        jit_compile: XLA-compile the whole step (one replica) or the transform alone
            (several replicas, when the transform allows it).
        loss_scale: A :class:`~tf_bng.step.DynamicLossScale` for mixed_float16, or None.
        skip_nonfinite: Skip (and count) steps whose loss or gradient is not finite.
        accumulation_steps: Micro-batches per update (>= 1), as described above.
        backward_scaling: Insert backward scale points (``ng`` / ``ng_adap`` only).

    Raises:
        ValueError: A non-integer or non-positive ``global_batch_size`` or one the replicas do
            not divide, an unbuilt model, ``accumulation_steps`` < 1, optimizer clipping under
            several replicas or Keras's ``gradient_accumulation_steps``, or
            ``backward_scaling`` with settings it cannot keep exact (the message names them).
        TypeError: ``transform`` is none of the kinds above, or ``loss`` is not callable.
    """

    def __init__(
        self,
        *,
        model: keras.Model,
        loss: Any,
        optimizer: keras.optimizers.Optimizer,
        transform: TransformConfig | BlockTransform | str | None = None,
        global_batch_size: int,
        strategy: tf.distribute.Strategy | None = None,
        metrics: Sequence[keras.metrics.Metric] = (),
        report_norms: bool = True,
        jit_compile: bool = False,
        loss_scale: DynamicLossScale | None = None,
        skip_nonfinite: bool = True,
        accumulation_steps: int = 1,
        backward_scaling: bool = False,
    ):
        self.model = model
        self.optimizer = optimizer
        self.strategy = strategy or tf.distribute.get_strategy()
        if isinstance(global_batch_size, bool) or int(global_batch_size) != global_batch_size:
            raise ValueError(f"global_batch_size must be an integer, got {global_batch_size!r}.")
        if int(global_batch_size) < 1:
            raise ValueError(
                f"global_batch_size must be >= 1 (the examples of one step over all replicas), "
                f"got {global_batch_size}: the loss is divided by it."
            )
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
        if not isinstance(transform, GradientTransform):
            raise TypeError(
                "transform must be a name of tf_bng.TRANSFORMS, a TransformConfig, or a "
                f"tf_bng.gradient_transforms.GradientTransform; got {transform!r}."
            )
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
        if int(accumulation_steps) < 1:
            raise ValueError(f"accumulation_steps must be >= 1, got {accumulation_steps}.")
        if getattr(optimizer, "gradient_accumulation_steps", None):
            raise ValueError(
                "The optimizer has Keras's gradient_accumulation_steps set: it would accumulate "
                "after the block transform (and fails under tf.distribute). Use "
                "TrainStep(accumulation_steps=k) instead."
            )
        self.accumulation_steps = int(accumulation_steps)
        self.backward_scaling = bool(backward_scaling)
        if self.backward_scaling:
            if not isinstance(self.transform, BlockTransform):
                raise ValueError(
                    "backward_scaling needs a transform given by name or TransformConfig "
                    "(ng or ng_adap), not a composed GradientTransform."
                )
            _check_backward_scaling(self.transform.config, model, optimizer)
        self.block_names = self._layout(model.trainable_variables).names
        with self.strategy.scope():
            if not optimizer.built:
                optimizer.build(model.trainable_variables)
            self.running_loss = _RunningMean()
            guarded = skip_nonfinite or loss_scale is not None
            self.bad_steps = step_guard.BadStepCounter() if guarded else None
            only_first = tf.VariableAggregation.ONLY_FIRST_REPLICA
            self.last_norms = tf.Variable(
                tf.zeros([len(self.block_names)]),
                trainable=False,
                aggregation=only_first,
                name="last_block_norms",
            )
            self.last_scales = tf.Variable(
                tf.ones([len(self.block_names)]),
                trainable=False,
                aggregation=only_first,
                name="last_block_scales",
            )
            self.last_log10_norms = tf.Variable(
                tf.zeros([len(self.block_names)]),
                trainable=False,
                aggregation=only_first,
                name="last_block_log10_norms",
            )
            self._train_model, self.scale_points = model, None
            if self.backward_scaling:
                self._train_model, self.scale_points = backward_scaling_lib.insert_scale_points(
                    model
                )
        point_variables = set()
        if self.scale_points is not None:
            point_variables = {id(v) for v in self.scale_points.factors}
            variables = model.trainable_variables
            blocks = self._layout(variables).blocks
            self._factors = self.scale_points.block_matrix(variables, blocks)
            self._variable_factors = self.scale_points.variable_matrix(variables)
            self._first_of_block = [ix[0] for ix in blocks]
        self._forward_state = [
            v for v in step_guard.forward_state_variables(model) if id(v) not in point_variables
        ]
        self.accumulator = None
        if self.accumulation_steps > 1:
            with self.strategy.scope():
                self.accumulator = GradientAccumulator(
                    model.trainable_variables,
                    self.accumulation_steps,
                    self._forward_state,
                    with_reference=self.scale_points is not None,
                )
        self._present = None  # which gradients are not None (set at trace time)
        # XLA compiles the step on its data; the loop that pulls batches from
        # the iterator stays outside it (XLA has no iterator ops), as Keras's
        # own fit does. Both entry points run the same compiled step.
        # Under several replicas XLA cannot compile the step (collectives on other
        # devices fail on CPU); it compiles the transform alone instead.
        whole_step = bool(jit_compile) and replicas == 1
        self._jit_transform = bool(jit_compile) and replicas > 1 and self.transform.xla_compatible
        if bool(jit_compile) and replicas > 1 and not self._jit_transform:
            logging.warning(
                "jit_compile: a user-registered norm may use ops XLA lacks; the "
                "block transform runs uncompiled under %d replicas.",
                replicas,
            )
        # Built once, for every trace of the step; the variables are the model's, always.
        self._compiled_transform = tf.function(
            lambda g: tuple(self.transform.apply(g, self.model.trainable_variables)),
            jit_compile=True,
            autograph=False,
        )
        self.jit_compile = whole_step
        self.step = tf.function(self._distributed_step, jit_compile=self.jit_compile)
        self.loop = tf.function(self._distributed_loop)

    def _layout(self, variables):
        return self.transform.layout(variables, [True] * len(variables))

    @property
    def _measures_only(self) -> bool:
        """The transform changes no gradient: ``"none"`` with no groups."""
        config = getattr(self.transform, "config", None)
        return config is not None and config.transform == "none" and not config.groups

    def checkpoint_items(self) -> dict:
        """The step's own state to checkpoint next to the model and optimizer, by name.

        The names are the checkpoint keys earlier versions used, so their
        checkpoints still restore.
        """
        items = {}
        if self.accumulator is not None:
            items["gradient_accumulator"] = self.accumulator
        if self.scale_points is not None:
            items["backward_scaling"] = self.scale_points
        if self.loss_scale is not None:
            items["loss_scale"] = self.loss_scale
        if self.bad_steps is not None:
            items["bad_steps"] = self.bad_steps
        return items

    # -- replica computation -------------------------------------------------
    def compute_loss(self, x, y, sample_weight, training: bool = True):
        """One replica's loss: the mean loss over the global batch plus scaled model losses.

        Args:
            x: The replica's inputs.
            y: The replica's targets.
            sample_weight: Per-example weights, or ``None``.
            training: Passed to the model (dropout, BatchNorm).

        Returns:
            ``(loss, predictions)``.
        """
        pred = self._train_model(x, training=training)
        per_example = self._loss_fn(y, to_float32(pred))
        loss = tf.nn.compute_average_loss(
            per_example, sample_weight=sample_weight, global_batch_size=self.global_batch_size
        )
        if self.model.losses:
            reg = tf.add_n([tf.cast(term, loss.dtype) for term in self.model.losses])
            loss += tf.nn.scale_regularization_loss(reg)
        return loss, pred

    def _global_gradients(self, batch):
        """The step up to the apply, in a replica.

        Returns the loss, the block norms, the transformed global gradient
        (divided for Keras's sum), whether the gradient is finite before and
        after the transform, what the metrics need and the snapshot of the
        forward-pass state taken before the forward pass.
        """
        x, y, sample_weight = unpack_batch(batch)
        before = step_guard.snapshot(self._forward_state)
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            loss, pred = self.compute_loss(x, y, sample_weight)
            scaled = loss if self.loss_scale is None else self.loss_scale.scale_loss(loss)
        grads = tape.gradient(scaled, variables)
        grads = distributed.sum_over_replicas(grads)
        if self.loss_scale is not None:
            grads = self.loss_scale.unscale(grads)
        grads, reports, finite = self._transform(grads, variables)
        grads = distributed.divide_for_keras_sum(grads)
        return loss, reports, grads, finite, (y, pred, sample_weight), before

    def _transform(self, grads, variables):
        """``(grads, (norms, scales, log10_norms), finite)``; empty reports when none are made.

        ``finite`` (every gradient is finite) is the step's one finiteness
        decision: the transform reads it off the norms it computes anyway.
        With backward scaling the transform sees scaled gradients; the
        reported norms and scales are converted back to the true ones.
        """
        empty = tf.zeros([0], tf.float32)
        if not self.report_norms and self._measures_only:
            return list(grads), (empty, empty, empty), all_finite(grads)
        grads, norms, scales, finite = self._apply_transform(grads, variables)
        if self.scale_points is None:
            return grads, (norms, scales, empty), finite
        if self.accumulator is not None:  # the window's common factor, per block
            log2_factors = tf.gather(
                tf.convert_to_tensor(self.accumulator.reference), self._first_of_block
            )
        else:
            log2_factors = self.scale_points.log2_factors(self._factors)
        norms, log10_norms = backward_scaling_lib.true_norms(norms, log2_factors)
        scales = backward_scaling_lib.times_power_of_two(scales, log2_factors)
        return grads, (norms, scales, log10_norms), finite

    def _apply_transform(self, grads, variables):
        """``transform.apply``, XLA-compiled on its own when asked under several replicas.

        The transform has no collectives, so it compiles where the whole step
        (all-reduce, Keras's apply) cannot; a user-registered norm may use ops
        XLA lacks, so a transform with one is never compiled.
        """
        if not self._jit_transform:
            return self.transform.apply(grads, variables)
        return self._compiled_transform(list(grads))

    def _record(self, norms, scales, log10_norms=None):
        """Keep the applied update's norms and scales (cross-replica context)."""
        if norms.shape[0] == self.last_norms.shape[0]:
            self.last_norms.assign(norms)
            self.last_scales.assign(scales)
        if log10_norms is not None and log10_norms.shape[0] == self.last_norms.shape[0]:
            self.last_log10_norms.assign(log10_norms)

    def _to_window_factor(self):
        """Per variable, the exact power of two that brings this micro-batch's gradient to the
        window's common factor (applied by the accumulator in float32).

        Each backward pass chooses its own powers; the first micro-batch of a
        window fixes the reference, and later ones are multiplied by the exact
        power of two ``2**(reference - own)`` before they are summed.
        """
        acc = self.accumulator
        own = self.scale_points.log2_factors(self._variable_factors)
        step_guard.run_if(acc.count == 0, lambda: acc.reference.assign(own))
        return backward_scaling_lib.power_of_two(tf.convert_to_tensor(acc.reference) - own)

    def _update_metrics(self, y, pred, sample_weight):
        for metric in self.metrics:
            metric.update_state(y, pred, sample_weight=sample_weight)

    def _apply(self, grads, outputs=None):
        self.optimizer.apply(grads, self.model.trainable_variables)
        if outputs is not None:
            self._update_metrics(*outputs)

    def _restore_forward_state(self, values):
        step_guard.restore(self._forward_state, values)

    def replica_step(self, batch):
        """The unguarded step: everything in one replica function.

        Run it under ``strategy.run``; :attr:`step` does that (and guards it, by default).

        Args:
            batch: This replica's part of one batch, ``(x, y[, sample_weight])`` or a dict.

        Returns:
            ``(loss, (norms, scales, log10_norms))``: this replica's share of the mean loss
            and, per block, the global gradient's norm, factor and log10 norm (empty tensors
            when none are reported; log10 norms only with backward scaling).
        """
        loss, norms_scales, grads, _, outputs, _ = self._global_gradients(batch)
        self._apply(grads, outputs)
        return loss, norms_scales

    # -- compiled entry points ----------------------------------------------
    def _first_replica(self, reports):
        # Every replica holds the same (all-reduced) norms: take the first.
        return tuple(self.strategy.experimental_local_results(t)[0] for t in reports)

    def _distributed_step(self, batch):
        if self.accumulator is not None:
            return self._accumulating_step(batch)
        if self.bad_steps is None:
            loss, reports = self.strategy.run(self.replica_step, args=(batch,))
            loss = self.strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)
            reports = self._first_replica(reports)
            self._record(*reports)
            self.running_loss.update(loss)
            return loss, reports[0]
        return self._guarded_step(batch)

    def _guarded_step(self, batch):
        loss, reports, grads, finite, outputs, before = self.strategy.run(
            self._global_gradients, args=(batch,)
        )
        loss = self.strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)
        reports = self._first_replica(reports)
        norms = reports[0]
        # Every replica saw the same all-reduced gradient, and the loss is
        # summed over all of them: one decision for the whole cluster.
        finite = tf.logical_and(
            self.strategy.experimental_local_results(finite)[0], tf.math.is_finite(loss)
        )

        def skip():
            if self._forward_state:
                self.strategy.run(self._restore_forward_state, args=(before,))

        def apply():
            self.strategy.run(self._apply, args=(grads, outputs))
            self._record(*reports)

        tf.cond(finite, apply, skip)
        if self.loss_scale is not None:
            self.loss_scale.update(finite)
        self.bad_steps.record(finite)
        self.running_loss.update(loss, counted=finite)
        return loss, norms

    # -- gradient accumulation ----------------------------------------------------
    def _micro_gradients(self, batch):
        """One micro-batch in a replica: forward, backward, add to this replica's sums."""
        acc = self.accumulator
        if self._forward_state:
            step_guard.run_if(acc.count == 0, lambda: acc.save_window_start(self._forward_state))
        x, y, sample_weight = unpack_batch(batch)
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            loss, pred = self.compute_loss(x, y, sample_weight)
            scaled = loss if self.loss_scale is None else self.loss_scale.scale_loss(loss)
        grads = tape.gradient(scaled, variables)
        if self.loss_scale is not None:
            grads = self.loss_scale.unscale(grads)
        factors = None if self.scale_points is None else self._to_window_factor()
        self._present = [g is not None for g in grads]
        acc.add(grads, factors)
        self._update_metrics(y, pred, sample_weight)
        return loss

    def _window_gradients(self):
        """At a window's end, in a replica: all-reduce the sums once, average, transform."""
        variables = self.model.trainable_variables
        like = [v if present else None for v, present in zip(variables, self._present)]
        grads = distributed.sum_over_replicas(self.accumulator.local_sums(like))
        inv_k = tf.constant(1.0 / self.accumulation_steps)
        grads = [None if g is None else scale_gradient(g, inv_k) for g in grads]
        grads, reports, finite = self._transform(grads, variables)
        return distributed.divide_for_keras_sum(grads), reports, finite

    def _finish_window(self):
        acc = self.accumulator
        grads, reports, finite = self.strategy.run(self._window_gradients)
        reports = self._first_replica(reports)
        finite = self.strategy.experimental_local_results(finite)[0]
        if self.bad_steps is not None:
            finite = tf.logical_and(finite, tf.convert_to_tensor(acc.window_loss_finite))
        else:
            finite = tf.constant(True)

        def apply():
            self.strategy.run(self._apply, args=(grads,))
            self._record(*reports)

        def skip():
            if self._forward_state:
                self.strategy.run(lambda: acc.restore_window_start(self._forward_state))

        tf.cond(finite, apply, skip)
        if self.loss_scale is not None:
            self.loss_scale.update(finite)
        if self.bad_steps is not None:
            self.bad_steps.record(finite)
        self.strategy.run(acc.reset)
        acc.count.assign(0)
        acc.window_loss_finite.assign(True)

    def _accumulating_step(self, batch):
        acc = self.accumulator
        loss = self.strategy.run(self._micro_gradients, args=(batch,))
        loss = self.strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)
        loss_finite = tf.math.is_finite(loss)
        acc.window_loss_finite.assign(tf.logical_and(acc.window_loss_finite, loss_finite))
        self.running_loss.update(loss, counted=loss_finite)
        count = acc.count.assign_add(1)
        step_guard.run_if(count >= self.accumulation_steps, self._finish_window)
        return loss, tf.convert_to_tensor(self.last_norms)

    def _distributed_loop(self, iterator, num_steps):
        """``num_steps`` updates: as many batches, times ``accumulation_steps``."""
        step = self.step if self.jit_compile else self._distributed_step
        loss, norms = step(next(iterator))
        for _ in tf.range(num_steps * self.accumulation_steps - 1):
            loss, norms = step(next(iterator))
        return loss, norms


_DIRECTION_ONLY = ("ng", "ng_adap")


def _check_backward_scaling(config: TransformConfig, model: keras.Model, optimizer) -> None:
    """Backward scaling changes gradient magnitudes: only direction-only settings are exact."""
    for index, rule in enumerate(config.rules()):
        where = "transform" if index == 0 else f"transform group {index}"
        if index and rule.transform == "none":
            continue  # such a group is excluded: its variables keep their raw gradient
        if rule.transform not in _DIRECTION_ONLY:
            raise ValueError(
                f"backward_scaling needs a transform that uses only each block's direction "
                f"(ng, ng_adap); {where} is {rule.transform!r}, which needs true magnitudes."
            )
        if rule.max_scale is not None or rule.epsilon > 0:
            raise ValueError(
                f"backward_scaling cannot be combined with max_scale or epsilon > 0 ({where}): "
                "both compare a true gradient norm with a fixed number."
            )
        if callable(rule.blocks) or rule.blocks == "global":
            raise ValueError(
                f"backward_scaling needs blocks='layer' or 'variable' ({where}): a block "
                "spanning several layers would mix gradients carrying different factors."
            )
    if model.losses:
        raise ValueError(
            "backward_scaling cannot be used with regularization losses (model.losses, e.g. an "
            "l2 kernel regularizer / model.weight_decay): their gradient does not pass through "
            "the scaled backward signal. Use the optimizer's decoupled weight_decay instead."
        )
    if type(optimizer).__name__ == "AdaGradBNG":
        raise ValueError(
            "backward_scaling cannot be used with AdaGradBNG, whose step size uses the true "
            "gradient norm; use ng with another optimizer."
        )


class _RunningMean:
    """Mean of the applied steps' losses since the last ``reset``: what a training log reports.

    Updated in cross-replica context with the already reduced loss, so its
    variables need no aggregation.
    """

    def __init__(self):
        self.total = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="loss_total")
        self.count = tf.Variable(0, dtype=tf.int64, trainable=False, name="loss_count")

    def update(self, loss, counted=True):
        """Add ``loss`` unless ``counted`` is False (a skipped step's loss may be NaN)."""
        counted = tf.convert_to_tensor(counted)
        self.total.assign_add(tf.where(counted, tf.cast(loss, tf.float64), 0.0))
        self.count.assign_add(tf.cast(counted, tf.int64))

    def result(self) -> float:
        count = int(self.count.numpy())
        return float(self.total.numpy()) / count if count else float("nan")

    def reset(self) -> None:
        self.total.assign(0.0)
        self.count.assign(0)
