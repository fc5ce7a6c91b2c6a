"""The outer training loop: ``train_and_evaluate(config, workdir) -> final metrics``.

Orbit's split: the inner loop is :meth:`tf_bng.TrainStep.loop`, several
steps inside one ``tf.function`` call; this outer loop, in Python, runs
inner loops up to the next event (log, evaluation, checkpoint) and handles
the event. Running it again on the same ``workdir`` resumes from the last
checkpoint, with the same training stream (see ``input_pipeline``).

What a run leaves in ``workdir`` (and nothing anywhere else):
``config.json``, ``metrics.jsonl``, ``summaries/{train,eval}``
(TensorBoard), ``checkpoints/``, and ``export/`` when ``config.export`` is
set.

Reliability (see also :mod:`~tf_bng.training.checkpointing`): the config,
the workdir, the replicas and the first batches are checked before anything
trains (:class:`~tf_bng.training.errors.ConfigError`,
:class:`~tf_bng.training.errors.DataError`); steps with a non-finite loss or
gradient are skipped and logged as ``bad_steps``, and ``train.max_bad_steps``
of them in a row stop the run (:class:`~tf_bng.training.errors.TrainingDiverged`)
without writing a checkpoint; SIGTERM/SIGINT save a checkpoint at the end of
the current inner loop and raise
:class:`~tf_bng.training.errors.TrainingInterrupted`.
"""

from __future__ import annotations

import datetime
import os
import signal
import time
from typing import Any

import keras
import tensorflow as tf
from absl import logging

from tf_bng import data as data_lib
from tf_bng import models as models_lib
from tf_bng.train_step import TrainStep
from tf_bng.training import config_checks, data_checks, input_pipeline, optimizers, runtime
from tf_bng.training.checkpointing import Checkpointer
from tf_bng.training.errors import TrainingDiverged, TrainingInterrupted
from tf_bng.training.eval_step import EvalStep
from tf_bng.training.export import export_saved_model, serving_spec
from tf_bng.training.interruption import StopRequest
from tf_bng.training.loss_scaling import DynamicLossScale
from tf_bng.training.metrics_log import MetricsLog

__all__ = ["Trainer", "train_and_evaluate"]


def _is_due(step: int, every: int) -> bool:
    return every > 0 and step % every == 0


def _next_event(step: int, total: int, *intervals: int) -> int:
    """The first step after ``step`` where some interval is due, capped at ``total``."""
    nxt = total
    for every in intervals:
        if every > 0:
            nxt = min(nxt, (step // every + 1) * every)
    return nxt


class Trainer:
    """One run: builds everything from ``config`` in ``__init__``; ``run()`` trains.

    Tests and the demo use the attributes (``model``, ``strategy``,
    ``train_step``, ``total_steps``...) to inspect a run.
    """

    def __init__(self, config: Any, workdir: str):
        config_checks.validate_config(config)
        config_checks.check_workdir(workdir)
        self.config = config
        self.workdir = workdir
        rt = config.runtime
        runtime.configure_virtual_cpus(int(rt.virtual_cpus))
        self.strategy = runtime.make_strategy(rt)
        self.is_chief = runtime.is_chief(self.strategy)
        logging.info(
            "Strategy %s: %d replicas in sync%s.", type(self.strategy).__name__,
            self.strategy.num_replicas_in_sync, "" if self.is_chief else " (not the chief)",
        )
        batch = int(config.data.batch_size)
        config_checks.check_replicas(batch, self.strategy)
        self.seed = int(config.train.seed)
        runtime.set_determinism(self.seed, bool(rt.deterministic))

        with config_checks.config_errors("data"):
            self.spec = data_lib.get_spec(config.data)
        config_checks.check_batch_fits(batch, self.spec)
        self.steps_per_epoch = self.spec.steps_per_epoch(batch)
        train = config.train
        self.total_steps = int(train.steps) or max(1, round(train.epochs * self.steps_per_epoch))
        self.log_every = int(train.log_every) or self.steps_per_epoch
        self.eval_every = int(train.eval_every) or self.steps_per_epoch
        self.checkpoint_every = int(train.checkpoint_every) or self.steps_per_epoch
        self.max_bad_steps = int(train.get("max_bad_steps", 0) or 0)

        with self.strategy.scope():
            self._build_model_and_optimizer()
        with config_checks.config_errors("train step"):
            self.train_step = TrainStep(
                model=self.model,
                loss=models_lib.default_loss(self.spec),
                optimizer=self.optimizer,
                transform=config_checks.transform_config(config.transform),
                global_batch_size=batch,
                strategy=self.strategy,
                metrics=self.train_metrics,
                jit_compile=bool(rt.jit_compile),
                loss_scale=self.loss_scale,
                skip_nonfinite=True,
            )
        self.eval_step = EvalStep(self.train_step, task=self.spec.task)
        self.checkpointer = self._make_checkpointer()
        self.log = MetricsLog(workdir, enabled=self.is_chief, block_names=self.train_step.block_names)
        self._eval_dataset = None

    def _build_model_and_optimizer(self) -> None:
        """Everything that holds variables; called inside ``strategy.scope()``."""
        config, rt = self.config, self.config.runtime
        with runtime.precision_scope(rt.mixed_precision), config_checks.config_errors("model"):
            self.model = models_lib.build_model(config.model, spec=self.spec)
        with config_checks.config_errors("optimizer"):
            learning_rate = optimizers.build_schedule(
                config.schedule,
                config.optimizer.learning_rate,
                steps_per_epoch=self.steps_per_epoch,
                total_steps=self.total_steps,
            )
            self.optimizer = optimizers.build_optimizer(
                config.optimizer, learning_rate=learning_rate, transform=config.transform
            )
        self.loss_scale = None
        if rt.mixed_precision == "mixed_float16":
            self.loss_scale = DynamicLossScale(
                initial_scale=float(rt.loss_scale_initial),
                growth_interval=int(rt.loss_scale_growth_interval),
            )
        self.step_counter = tf.Variable(
            0, dtype=tf.int64, trainable=False, name="global_step",
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )
        self.train_metrics = []
        if self.spec.task in ("classification", "language_model"):
            self.train_metrics.append(keras.metrics.SparseCategoricalAccuracy("accuracy"))

    def _make_checkpointer(self) -> Checkpointer:
        trackables = dict(
            model=self.model,
            optimizer=self.optimizer,
            step=self.step_counter,
            # The model's object graph misses the dropout layers' SeedGenerator
            # states (plain Python objects); listing every model variable saves
            # them too, so a resumed run draws the same dropout masks.
            model_variables=list(self.model.variables),
        )
        if self.loss_scale is not None:
            trackables["loss_scale"] = self.loss_scale
        if self.train_step.bad_steps is not None:
            trackables["bad_steps"] = self.train_step.bad_steps
        return Checkpointer(
            os.path.join(self.workdir, "checkpoints"),
            strategy=self.strategy,
            max_to_keep=int(self.config.train.get("keep_checkpoints", 3)),
            **trackables,
        )

    # -- events ---------------------------------------------------------------
    @property
    def step(self) -> int:
        return int(self.step_counter.numpy())

    def _epoch(self, step: int) -> float:
        return step / self.steps_per_epoch

    def _extra_scalars(self, loss: float) -> dict:
        """Task-specific reports: f - f* for the quadratic, perplexity for language models."""
        if self.spec.task == "quadratic":
            problem = getattr(self.model, "problem", None)
            return {"suboptimality": loss - problem.optimum} if problem is not None else {}
        return {}

    def _learning_rate(self) -> float:
        return float(keras.ops.convert_to_numpy(self.optimizer.learning_rate))

    def evaluate(self) -> dict:
        """One pass over the eval split; logged and returned."""
        if self._eval_dataset is None:
            self._eval_dataset = input_pipeline.distribute_split(
                self.strategy, self.config.data, split="eval", training=False, seed=self.seed
            )
        results = self.eval_step.evaluate(self._eval_dataset)
        results.update(self._extra_scalars(results["loss"]))
        step = self.step
        scalars = {"epoch": self._epoch(step), **results}
        self.log.write("eval", step, scalars)
        logging.info("eval  step %d: %s", step, _format(results))
        return results

    def _bad_steps(self) -> tuple[int, int]:
        """``(total, consecutive)`` skipped steps so far."""
        counter = self.train_step.bad_steps
        return counter.counts() if counter is not None else (0, 0)

    def _log_train(self, step: int, norms, steps_per_second: float, bad_steps: int) -> dict:
        loss = self.train_step.running_loss.result()
        scalars = {"epoch": self._epoch(step), "loss": loss, "bad_steps": bad_steps}
        for metric in self.train_metrics:
            scalars[metric.name] = float(metric.result())
            metric.reset_state()
        if self.spec.task == "language_model":
            scalars["perplexity"] = float(tf.exp(tf.minimum(loss, 700.0)))
        scalars.update(self._extra_scalars(loss))
        scalars["learning_rate"] = self._learning_rate()
        scalars["steps_per_second"] = steps_per_second
        self.train_step.running_loss.reset()
        self.log.write("train", step, scalars, block_norms=norms)
        remaining = (self.total_steps - step) / steps_per_second if steps_per_second else 0.0
        logging.info(
            "train step %d/%d (epoch %.2f): loss %.5g, %.1f steps/s, ETA %s",
            step, self.total_steps, scalars["epoch"], loss, steps_per_second,
            datetime.timedelta(seconds=round(remaining)),
        )
        return {k: v for k, v in scalars.items() if k not in ("epoch",)}

    def _write_config(self) -> None:
        if not self.is_chief:
            return
        tf.io.gfile.makedirs(self.workdir)
        with tf.io.gfile.GFile(os.path.join(self.workdir, "config.json"), "w") as f:
            f.write(self.config.to_json_best_effort(indent=2, sort_keys=True) + "\n")

    def export(self) -> str:
        element_spec = data_lib.build_dataset(
            self.config.data, split="eval", training=False, seed=self.seed
        ).element_spec
        path = os.path.join(self.workdir, "export")
        export_saved_model(self.model, path, serving_spec(element_spec), strategy=self.strategy)
        logging.info("Exported the SavedModel to %s", path)
        return path

    # -- the loop ---------------------------------------------------------------
    def run(self) -> dict:
        """Train to ``total_steps`` (resuming if a checkpoint exists), evaluate, export."""
        try:
            with StopRequest() as stop:
                return self._run(stop)
        finally:
            self.log.close()

    def _resume(self) -> tuple[int, bool]:
        restored = self.checkpointer.restore_latest()
        start = self.step
        if restored:
            logging.info("Resuming at step %d of %d.", start, self.total_steps)
        dropped = self.log.rewind(start)
        if dropped:
            logging.info("Dropped %d metrics records after step %d: those steps run again.",
                         dropped, start)
        return start, restored is not None

    def _check_data(self) -> None:
        data_checks.check_first_batches(
            self.config.data,
            spec=self.spec,
            input_shape=data_checks.model_input_shape(self.model, self.spec),
            seed=self.seed,
        )

    def _diverged(self, step: int, consecutive: int) -> TrainingDiverged:
        latest = self.checkpointer.latest()
        where = f"the last good checkpoint, {latest}, is intact" if latest else "no checkpoint yet"
        return TrainingDiverged(
            f"{consecutive} steps in a row (up to step {step}) had a non-finite loss or gradient "
            f"(train.max_bad_steps={self.max_bad_steps}): stopped; {where}. Lower "
            "optimizer.learning_rate or use a normalizing transform (ng, clip), then rerun."
        )

    def _interrupted(self, stop: StopRequest, step: int) -> TrainingInterrupted:
        name = stop.name or "another worker's signal"
        return TrainingInterrupted(
            f"interrupted by {name} at step {step} of {self.total_steps}: checkpoint saved; "
            "rerun the same command to resume.",
            signum=stop.signum or signal.SIGTERM,
            step=step,
        )

    def _run(self, stop: StopRequest) -> dict:
        self._write_config()
        start, restored = self._resume()
        self._check_data()
        iterator = input_pipeline.train_iterator(
            self.strategy,
            self.config.data,
            seed=self.seed,
            start_step=start,
            fast_forward=bool(self.config.train.fast_forward_input),
        )
        final: dict[str, float] = {}
        step, saved_step = start, start if restored else -1
        window_steps, window_seconds = 0, 0.0
        window_bad_start = self._bad_steps()[0]
        steps_per_loop = int(self.config.train.steps_per_loop)
        while step < self.total_steps:
            target = _next_event(
                step, self.total_steps, self.log_every, self.eval_every, self.checkpoint_every
            )
            num_steps = min(steps_per_loop, target - step)
            started = time.perf_counter()
            _, norms = self.train_step.loop(iterator, tf.constant(num_steps, tf.int32))
            norms = norms.numpy()  # waits for the steps to finish
            window_seconds += time.perf_counter() - started
            window_steps += num_steps
            step += num_steps
            self.step_counter.assign(step)
            last = step == self.total_steps
            bad_total, consecutive = self._bad_steps()
            diverged = 0 < self.max_bad_steps <= consecutive
            if last or diverged or _is_due(step, self.log_every):
                rate = window_steps / window_seconds if window_seconds else 0.0
                train = self._log_train(step, norms, rate, bad_total - window_bad_start)
                final.update({f"train_{k}": v for k, v in train.items()})
                window_steps, window_seconds, window_bad_start = 0, 0.0, bad_total
            if diverged:
                raise self._diverged(step, consecutive)
            if last or _is_due(step, self.eval_every):
                final.update({f"eval_{k}": v for k, v in self.evaluate().items()})
            if last or _is_due(step, self.checkpoint_every):
                self.checkpointer.save(step)
                saved_step = step
            if runtime.any_worker(self.strategy, stop.signum is not None):
                if saved_step != step:
                    self.checkpointer.save(step)
                raise self._interrupted(stop, step)
        if not any(k.startswith("eval_") for k in final):
            final.update({f"eval_{k}": v for k, v in self.evaluate().items()})
        if saved_step != step:
            self.checkpointer.save(step)
        if self.config.export:
            self.export()
        final.update(step=step, epoch=self._epoch(step), bad_steps_total=self._bad_steps()[0])
        return final


def _format(results: dict) -> str:
    return ", ".join(f"{k} {v:.5g}" for k, v in results.items())


def train_and_evaluate(config: Any, workdir: str) -> dict:
    """Run (or resume) the experiment ``config`` in ``workdir``; returns the final metrics.

    Keys: ``step``, ``epoch``, ``bad_steps_total``, ``train_<metric>`` (last
    logging window, with ``train_bad_steps``), ``eval_<metric>`` (last
    evaluation). Raises a :class:`~tf_bng.training.errors.RunError` subclass
    when the run refuses to start or stops early (see the module docstring).
    """
    return Trainer(config, workdir).run()
