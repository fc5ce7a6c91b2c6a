"""The distributed train step: a short pipeline of stages, each in its own file.

One update runs, in order:

1. :mod:`.loss_and_gradients` (in each replica): forward pass, loss over the
   global batch, ``GradientTape`` gradient;
2. all-reduce (:func:`tf_bng.distributed.sum_over_replicas`): the global gradient;
3. loss-scale unscale (:mod:`.loss_scaling`, mixed_float16 only);
4. :mod:`.accumulation` (``accumulation_steps`` > 1): micro-batches summed
   locally, all-reduced once at the window's end;
5. :mod:`.transform_stage`: the block transform, with its norms and factors
   (true ones under :mod:`.backward_scaling_stage`);
6. divide by the replica count (:func:`tf_bng.distributed.divide_for_keras_sum`):
   Keras sums the identical copies back inside ``optimizer.apply``;
7. :mod:`.guard` (cross-replica): one finiteness decision for all replicas;
   a skipped step puts back the forward state and is counted;
8. :mod:`.apply_stage`: ``optimizer.apply`` of any Keras 3 optimizer.

Steps 1-6 of one update read top to bottom in :meth:`TrainStep._replica_update`,
7-8 in :meth:`TrainStep._one_step`.

The guard sits outside the replicas because ``optimizer.apply`` calls
``merge_call``, which a ``cond`` inside ``strategy.run`` does not allow.
Orbit-style, :class:`TrainStep` exposes ``step(batch)`` and
``loop(iterator, n)`` (n steps inside one ``tf.function`` call); both return
a :class:`~tf_bng.step.outputs.StepOutput`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import keras
import tensorflow as tf

from tf_bng import distributed
from tf_bng.gradient_transforms import GradientTransform
from tf_bng.step import backward_scaling_stage, guard
from tf_bng.step.accumulation import AccumulationWindow, checked_accumulation_steps
from tf_bng.step.apply_stage import ApplyStage
from tf_bng.step.backward_scaling_stage import BackwardScaling
from tf_bng.step.loss_and_gradients import LossAndGradients
from tf_bng.step.loss_scaling import DynamicLossScale
from tf_bng.step.outputs import BlockRecord, StepOutput
from tf_bng.step.transform_stage import TransformStage, as_gradient_transform
from tf_bng.transforms import TransformConfig

__all__ = ["TrainStep"]

_SUM = tf.distribute.ReduceOp.SUM


class ReplicaUpdate(NamedTuple):
    """What one replica hands back from :meth:`TrainStep._replica_update`."""

    loss: tf.Tensor
    grads: list  # global, transformed, divided by the replica count for Keras's sum
    reports: tuple  # block norms, scales, log10 norms
    finite: tf.Tensor
    metric_inputs: tuple
    before: list  # the forward state (BatchNorm statistics) before this step


class TrainStep:
    """A compiled training step for ``model`` under ``strategy``.

    ``step(batch)`` runs one step on a distributed batch and ``loop(iterator,
    n)`` runs n updates in one call; both return a
    :class:`~tf_bng.step.outputs.StepOutput` (loss, per-block norms and
    factors, whether the update was applied, loss totals, bad-step counts).

    ``skip_nonfinite`` (default on) skips a step whose loss or global gradient
    is not finite: the optimizer is left untouched, the forward state
    (BatchNorm statistics) is put back, and the step is counted in
    ``bad_steps``. A ``loss_scale`` (mixed_float16) always skips and is driven
    by the same decision. Train ``metrics`` are updated by applied steps.

    ``accumulation_steps=k`` (> 1): each ``step(batch)`` consumes one
    micro-batch of ``global_batch_size`` examples and every k-th applies one
    update from the *mean* of the k gradients (all-reduced once, then
    transformed); ``loop(it, n)`` runs n updates (n*k micro-batches). The
    guard judges the window; metrics count every micro-batch. It costs one
    float32 buffer per variable.

    ``backward_scaling`` (``ng`` / ``ng_adap`` only): True, or a
    :class:`~tf_bng.step.BackwardScaling` built from ``model``, trains
    through a copy of the model's graph with backward scale points (see
    :mod:`tf_bng.backward_scaling`); norms and factors are reported as the
    true ones, with their log10 where they leave float32's range.

    ``last_norms`` / ``last_scales`` / ``last_log10_norms`` hold, per block,
    what the last applied update measured and multiplied by.

    Args:
        model: A built Keras model (called once, or given an Input).
        loss: A Keras loss name, ``keras.losses.Loss`` or ``(y_true, y_pred) -> values``; it
            is summed per example and divided by ``global_batch_size``.
        optimizer: The Keras optimizer that applies the transformed gradient.
        transform: A name of :data:`tf_bng.TRANSFORMS`, a :class:`~tf_bng.TransformConfig`,
            or any :class:`~tf_bng.gradient_transforms.GradientTransform`; None: ``"none"``.
        global_batch_size: Examples per step over all replicas (a multiple of their number).
        strategy: The ``tf.distribute`` strategy; default: the current one.
        metrics: Keras metrics updated with ``(y, pred, sample_weight)`` by applied steps.
        report_norms: Whether the step computes block norms when the transform needs none.
        jit_compile: XLA-compile the whole step (one replica) or the transform alone
            (several replicas, when the transform allows it).
        loss_scale: A :class:`~tf_bng.step.DynamicLossScale` for mixed_float16, or None.
        skip_nonfinite: Skip (and count) steps whose loss or gradient is not finite.
        accumulation_steps: Micro-batches per update (>= 1), as described above.
        backward_scaling: False, True, or a :class:`~tf_bng.step.BackwardScaling` of ``model``.

    Raises:
        ValueError: A non-integer or non-positive ``global_batch_size`` or one the replicas do
            not divide, an unbuilt model, ``accumulation_steps`` < 1, optimizer clipping under
            several replicas or Keras's ``gradient_accumulation_steps``, or
            ``backward_scaling`` with settings it cannot keep exact (the message names them).
        TypeError: ``transform`` or ``backward_scaling`` is none of the kinds above, or
            ``loss`` is not callable.
    """

    def __init__(
        self,
        *,
        model: keras.Model,
        loss: Any,
        optimizer: keras.optimizers.Optimizer,
        transform: TransformConfig | GradientTransform | str | None = None,
        global_batch_size: int,
        strategy: tf.distribute.Strategy | None = None,
        metrics: Sequence[keras.metrics.Metric] = (),
        report_norms: bool = True,
        jit_compile: bool = False,
        loss_scale: DynamicLossScale | None = None,
        skip_nonfinite: bool = True,
        accumulation_steps: int = 1,
        backward_scaling: bool | BackwardScaling = False,
    ):
        if not model.built:
            raise ValueError("Build the model (call it once or give it an Input) before the step.")
        self.model, self.optimizer, self.metrics = model, optimizer, list(metrics)
        self.strategy = strategy or tf.distribute.get_strategy()
        replicas = self.strategy.num_replicas_in_sync
        self.global_batch_size = _checked_batch_size(global_batch_size, self.strategy)
        _check_optimizer(optimizer, replicas)
        self.accumulation_steps = checked_accumulation_steps(accumulation_steps)
        self.loss_scale = loss_scale
        variables = model.trainable_variables
        transform = as_gradient_transform(transform)
        self.jit_compile = bool(jit_compile) and replicas == 1

        # The stages, in the order a step runs them.
        self.backward_scaling = backward_scaling_stage.checked(
            backward_scaling, model=model, transform=transform, optimizer=optimizer
        )
        forward_model = self.backward_scaling and self.backward_scaling.forward_model
        self.gradients = LossAndGradients(
            model=model,
            loss=loss,
            global_batch_size=self.global_batch_size,
            forward_model=forward_model,
            loss_scale=loss_scale,
        )
        self.transform_stage = TransformStage(
            transform,
            variables=variables,
            report_norms=report_norms,
            compile_alone=bool(jit_compile) and replicas > 1,
        )
        self.apply = ApplyStage(optimizer, variables, self.metrics)
        with self.strategy.scope():
            if not optimizer.built:
                optimizer.build(variables)
            not_state = self.backward_scaling.point_variables if self.backward_scaling else set()
            self.guard = guard.StepGuard(
                model,
                enabled=skip_nonfinite or loss_scale is not None,
                not_state=frozenset(not_state),
            )
            self.accumulator = None
            if self.accumulation_steps > 1:
                self.accumulator = AccumulationWindow(
                    variables,
                    self.accumulation_steps,
                    self.guard.forward_state,
                    with_reference=self.backward_scaling is not None,
                )
            self.record = BlockRecord(len(self.block_names))
        self._present = None  # which gradients are not None (set at trace time)
        # XLA compiles the step on its data; the loop that pulls batches stays outside it
        # (XLA has no iterator ops), as Keras's own fit does.
        self.step = tf.function(self._one_step, jit_compile=self.jit_compile)
        self.loop = tf.function(self._loop)

    # -- what callers read --------------------------------------------------------
    @property
    def transform(self) -> GradientTransform:
        """The transform the step applies (built from a name or config when given one)."""
        return self.transform_stage.transform

    @property
    def block_names(self) -> list[str]:
        """The names of the reported blocks, in the order of the norms and scales."""
        return self.transform_stage.block_names

    @property
    def bad_steps(self) -> guard.BadStepCounter | None:
        """The skipped-step counter (None when the guard is off)."""
        return self.guard.bad_steps

    @property
    def last_norms(self) -> tf.Variable:
        """Per block, the norms the last applied update measured (before the transform)."""
        return self.record.norms

    @property
    def last_scales(self) -> tf.Variable:
        """Per block, the factor the last applied update multiplied the gradient by."""
        return self.record.scales

    @property
    def last_log10_norms(self) -> tf.Variable:
        """Per block, log10 of the last applied update's true norms (backward scaling)."""
        return self.record.log10_norms

    def checkpoint_items(self) -> dict:
        """The step's own state to checkpoint next to the model and optimizer, by name."""
        items = {
            "gradient_accumulator": self.accumulator,
            "backward_scaling": self.backward_scaling and self.backward_scaling.points,
            "loss_scale": self.loss_scale,
            "bad_steps": self.bad_steps,
        }
        return {name: item for name, item in items.items() if item is not None}

    # -- one update ---------------------------------------------------------------
    def _replica_update(self, batch) -> ReplicaUpdate:
        """In a replica: gradients and loss, all-reduce, unscale, transform, divide for Keras."""
        before = self.guard.snapshot()
        loss, grads, metric_inputs = self.gradients(batch)
        grads = distributed.sum_over_replicas(grads)
        if self.loss_scale is not None:
            grads = self.loss_scale.unscale(grads)
        result = self.transform_stage(grads)
        grads = distributed.divide_for_keras_sum(result.grads)
        return ReplicaUpdate(
            loss, grads, self._reports(result), result.finite, metric_inputs, before
        )

    def _one_step(self, batch) -> StepOutput:
        if self.accumulator is not None:
            return self._micro_step(batch)
        update = self.strategy.run(self._replica_update, args=(batch,))
        loss = self.strategy.reduce(_SUM, update.loss, axis=None)
        reports = self._first_replica(update.reports)
        # Every replica saw the same all-reduced gradient and the loss is summed over all
        # of them: one decision for the whole cluster.
        finite = tf.logical_and(self._first_replica(update.finite), tf.math.is_finite(loss))

        def apply():
            self.strategy.run(self.apply, args=(update.grads, update.metric_inputs))
            self.record.keep(*reports)

        def skip():
            if self.guard.forward_state:
                self.strategy.run(
                    lambda values: guard.restore(self.guard.forward_state, values),
                    args=(update.before,),
                )

        applied = self._guarded(finite, apply, skip)
        return self._output(loss, reports, applied, counted=applied)

    def _guarded(self, finite, apply, skip) -> tf.Tensor:
        applied = self.guard.apply_or_skip(finite, apply, skip)
        if self.loss_scale is not None:
            self.loss_scale.update(applied)
        return applied

    def _reports(self, result, window=None) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        if self.backward_scaling is None or result.norms.shape[0] == 0:
            return result.norms, result.scales, tf.zeros([0], tf.float32)
        return self.backward_scaling.true_reports(result.norms, result.scales, window)

    def _first_replica(self, values):
        # Every replica holds the same (all-reduced) value: take the first.
        return tf.nest.map_structure(
            lambda t: self.strategy.experimental_local_results(t)[0], values
        )

    def _output(self, loss, reports, applied, counted) -> StepOutput:
        norms, scales, log10_norms = reports
        empty = tf.zeros([0], tf.float32)
        if self.transform_stage.measures_only:
            scales = empty  # every factor is 1
        if self.backward_scaling is None:
            log10_norms = empty
        counted = tf.convert_to_tensor(counted)
        total, in_a_row = self.guard.counts()
        return StepOutput(
            loss=loss,
            block_norms=norms,
            block_scales=scales,
            block_log10_norms=log10_norms,
            applied=tf.convert_to_tensor(applied),
            loss_total=tf.where(counted, tf.cast(loss, tf.float64), tf.constant(0.0, tf.float64)),
            losses_counted=tf.cast(counted, tf.int64),
            bad_steps=total,
            bad_steps_in_a_row=in_a_row,
        )

    # -- accumulation: k micro-batches, one update --------------------------------
    def _add_micro_batch(self, batch):
        """In a replica: gradients and loss, unscale, add to this replica's sums."""
        window = self.accumulator
        if self.guard.forward_state:
            guard.run_if(
                window.count == 0, lambda: window.save_window_start(self.guard.forward_state)
            )
        loss, grads, metric_inputs = self.gradients(batch)
        if self.loss_scale is not None:
            grads = self.loss_scale.unscale(grads)
        factors = None
        if self.backward_scaling is not None:
            factors = self.backward_scaling.to_window_factor(window)
        self._present = [g is not None for g in grads]
        window.add(grads, factors)
        self.apply.update_metrics(*metric_inputs)
        return loss

    def _window_update(self):
        """In a replica, at a window's end: average, all-reduce once, transform."""
        variables = self.model.trainable_variables
        like = [v if present else None for v, present in zip(variables, self._present)]
        grads = distributed.sum_over_replicas(self.accumulator.local_means(like))
        result = self.transform_stage(grads)
        grads = distributed.divide_for_keras_sum(result.grads)
        return grads, self._reports(result, self.accumulator), result.finite

    def _end_window(self) -> tf.Tensor:
        window = self.accumulator
        grads, reports, finite = self.strategy.run(self._window_update)
        reports = self._first_replica(reports)
        finite = tf.logical_and(
            self._first_replica(finite), tf.convert_to_tensor(window.window_loss_finite)
        )

        def apply():
            self.strategy.run(self.apply, args=(grads,))
            self.record.keep(*reports)

        def skip():
            if self.guard.forward_state:
                self.strategy.run(lambda: window.restore_window_start(self.guard.forward_state))

        applied = self._guarded(finite, apply, skip)
        self.strategy.run(window.reset)
        window.next_window()
        return applied

    def _micro_step(self, batch) -> StepOutput:
        window = self.accumulator
        loss = self.strategy.reduce(
            _SUM, self.strategy.run(self._add_micro_batch, args=(batch,)), axis=None
        )
        loss_finite = tf.math.is_finite(loss)
        window.window_loss_finite.assign(tf.logical_and(window.window_loss_finite, loss_finite))
        count = window.count.assign_add(1)
        applied = tf.cond(
            count >= self.accumulation_steps, self._end_window, lambda: tf.constant(False)
        )
        return self._output(loss, self.record.read(), applied, counted=loss_finite)

    # -- several steps in one call ------------------------------------------------
    def _loop(self, iterator, num_steps) -> StepOutput:
        """``num_steps`` updates (times ``accumulation_steps`` batches); loss totals summed."""
        # One call site, so the step is traced (and inlined) once: a second call before the
        # loop, to give ``output`` its structure, traced the whole step twice (a smoke run:
        # 7.2 s, now 3.2 s). The loop starts from an output with empty report vectors, whose
        # length the first step sets. n < 1 runs one update. Under XLA each
        # step is its own compiled function (``step``), the iterator staying outside XLA.
        step = self.step if self.jit_compile else self._one_step
        empty = tf.zeros([0], tf.float32)  # a step's loss and reports are float32
        output = self._output(tf.constant(0.0), (empty, empty, empty), False, counted=False)
        any_length = tf.nest.map_structure(lambda t: tf.TensorShape([None] * t.shape.rank), output)
        total, counted = output.loss_total, output.losses_counted
        for _ in tf.range(tf.maximum(num_steps, 1) * self.accumulation_steps):
            tf.autograph.experimental.set_loop_options(shape_invariants=[(output, any_length)])
            output = step(next(iterator))
            total += output.loss_total
            counted += output.losses_counted
        return output._replace(loss_total=total, losses_counted=counted)


def _checked_batch_size(global_batch_size: Any, strategy: tf.distribute.Strategy) -> int:
    if isinstance(global_batch_size, bool) or int(global_batch_size) != global_batch_size:
        raise ValueError(f"global_batch_size must be an integer, got {global_batch_size!r}.")
    if int(global_batch_size) < 1:
        raise ValueError(
            f"global_batch_size must be >= 1 (the examples of one step over all replicas), "
            f"got {global_batch_size}: the loss is divided by it."
        )
    replicas = strategy.num_replicas_in_sync
    if int(global_batch_size) % replicas:
        raise ValueError(
            f"Global batch size {global_batch_size} is not divisible by the {replicas} replicas "
            f"of {type(strategy).__name__}."
        )
    return int(global_batch_size)


def _check_optimizer(optimizer: keras.optimizers.Optimizer, replicas: int) -> None:
    if replicas > 1:
        for attr in ("clipnorm", "global_clipnorm", "clipvalue"):
            if getattr(optimizer, attr, None):
                raise ValueError(
                    f"optimizer.{attr} is set: Keras 3 clips each replica's gradient before "
                    "summing them, which is wrong under a multi-replica strategy. Use "
                    "transform='clip' or 'global_clip' instead."
                )
    if getattr(optimizer, "gradient_accumulation_steps", None):
        raise ValueError(
            "The optimizer has Keras's gradient_accumulation_steps set: it would accumulate "
            "after the block transform (and fails under tf.distribute). Use "
            "TrainStep(accumulation_steps=k) instead."
        )
