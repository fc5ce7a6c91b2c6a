"""The outer loop: train / evaluate / checkpoint / export around a built :class:`TrainStep`.

Orbit's split (``orbit/controller.py``): the inner loop is
:meth:`tf_bng.TrainStep.loop`, several steps inside one ``tf.function``
call; this outer loop, in Python, runs inner loops up to the next event
(log, evaluation, checkpoint) and handles the event. Like Orbit's
Controller it is handed ready objects and never reads a config: the step,
a dataset factory ``start_step -> iterator`` (so that a resumed run replays
the same stream), an evaluation function, a :class:`Checkpointer`, a
:class:`MetricsLog` and an export function, each optional except the step
and the data.

What every run needs whatever its config lives here too: SIGTERM/SIGINT
save a checkpoint at the end of the current inner loop and raise
:class:`~tf_bng.errors.TrainingInterrupted`; ``max_bad_steps`` non-finite
steps in a row stop the run (:class:`~tf_bng.errors.TrainingDiverged`)
without writing a checkpoint; ``check_data`` runs before the first step;
on resume the metrics log is rewound to the restored step.
"""

from __future__ import annotations

import datetime
import math
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import keras
import tensorflow as tf
from absl import logging

from tf_bng.errors import DataError, TrainingDiverged, TrainingInterrupted
from tf_bng.step.train_step import TrainStep
from tf_bng.training import runtime
from tf_bng.training.checkpointing import Checkpointer
from tf_bng.training.interruption import StopRequest
from tf_bng.training.metrics_log import MetricsLog

__all__ = ["Controller", "next_event"]

Scalars = Mapping[str, float]


def _is_due(step: int, every: int) -> bool:
    return every > 0 and step % every == 0


def next_event(step: int, total: int, *intervals: int) -> int:
    """The first step after ``step`` where some interval is due, capped at ``total``.

    Args:
        step: The current step.
        total: The last step of the run.
        *intervals: Event intervals in steps; 0 or less never falls due.

    Returns:
        The smallest multiple of an interval above ``step``, or ``total`` if smaller.
    """
    nxt = total
    for every in intervals:
        if every > 0:
            nxt = min(nxt, (step // every + 1) * every)
    return nxt


class Controller:
    """Runs ``train_step`` to ``total_steps`` with logging, evaluation, checkpoints and export.

    Args:
      train_step: the built step; the :class:`~tf_bng.step.StepOutput` its
        ``loop`` returns, and its ``metrics``, are what the train log reports.
      train_data: ``start_step -> iterator`` of distributed batches positioned
        after ``start_step`` steps.
      total_steps: the number of steps (updates) of the run.
      step_counter: an int64 variable holding the step; checkpoint it.
      steps_per_loop: steps per inner-loop call (fewer Python round trips).
      log_every: the train-log interval in steps (0: never; the last step
        always logs).
      eval_every: the evaluation interval in steps (0: never; the last step
        always evaluates).
      checkpoint_every: the checkpoint interval in steps (0: never; the last
        step always checkpoints).
      evaluate: ``() -> {name: value}`` over the evaluation data.
      checkpointer: saves and restores the run's state; None: no resume.
      log: where scalars and block norms go; None: nowhere.
      export: ``() -> path``, called once at the end.
      check_data: called before the first step (e.g. a look at the first batches).
      on_start: ``(start_step) -> None``, called once the resume and ``check_data``
        have passed, before the first step: where an application records what
        this run is (a refused start then leaves its work directory as it was).
      max_bad_steps: stop after this many non-finite steps in a row (0: never).
      steps_per_epoch: to report ``epoch`` next to ``step``.
      extra_scalars: ``(loss) -> {name: value}`` added to train and eval
        records (perplexity, suboptimality).
      strategy: the step's strategy by default; a signal on any worker stops all.

    Raises:
      ValueError: if ``total_steps`` or ``steps_per_loop`` is below 1.
    """

    def __init__(
        self,
        *,
        train_step: TrainStep,
        train_data: Callable[[int], Iterator],
        total_steps: int,
        step_counter: tf.Variable,
        steps_per_loop: int = 1,
        log_every: int = 0,
        eval_every: int = 0,
        checkpoint_every: int = 0,
        evaluate: Callable[[], dict] | None = None,
        checkpointer: Checkpointer | None = None,
        log: MetricsLog | None = None,
        export: Callable[[], str] | None = None,
        check_data: Callable[[], None] | None = None,
        on_start: Callable[[int], None] | None = None,
        max_bad_steps: int = 0,
        steps_per_epoch: int | None = None,
        extra_scalars: Callable[[float], Scalars] | None = None,
        strategy: tf.distribute.Strategy | None = None,
    ):
        if int(total_steps) < 1 or int(steps_per_loop) < 1:
            raise ValueError(
                f"total_steps and steps_per_loop must be >= 1; got {total_steps}, {steps_per_loop}."
            )
        self.train_step = train_step
        self.train_data = train_data
        self.total_steps = int(total_steps)
        self.step_counter = step_counter
        self.steps_per_loop = int(steps_per_loop)
        self.log_every = int(log_every)
        self.eval_every = int(eval_every)
        self.checkpoint_every = int(checkpoint_every)
        self._evaluate = evaluate
        self.checkpointer = checkpointer
        self.log = log
        self._export = export
        self._check_data = check_data
        self._on_start = on_start
        self.max_bad_steps = int(max_bad_steps)
        self.steps_per_epoch = steps_per_epoch
        self._extra_scalars = extra_scalars or (lambda loss: {})
        self.strategy = strategy or train_step.strategy

    # -- events ---------------------------------------------------------------
    @property
    def step(self) -> int:
        """The number of training steps taken so far."""
        return int(self.step_counter.numpy())

    def _epoch(self, step: int) -> dict:
        return {"epoch": step / self.steps_per_epoch} if self.steps_per_epoch else {}

    def _write(self, split: str, step: int, scalars: dict, **kwargs) -> None:
        if self.log is not None:
            self.log.write(split, step, scalars, **kwargs)

    def evaluate(self) -> dict:
        """One evaluation, logged and returned ({} without an evaluate function)."""
        if self._evaluate is None:
            return {}
        results = dict(self._evaluate())
        if "loss" in results:
            results.update(self._extra_scalars(results["loss"]))
        step = self.step
        self._write("eval", step, {**self._epoch(step), **results})
        _progress("eval  step %d: %s", step, _format(results))
        return results

    def _bad_steps(self) -> tuple[int, int]:
        """``(total, consecutive)`` skipped steps so far."""
        counter = self.train_step.bad_steps
        return counter.counts() if counter is not None else (0, 0)

    def _learning_rate(self) -> dict:
        rate = getattr(self.train_step.optimizer, "learning_rate", None)
        if rate is None:
            return {}
        return {"learning_rate": float(keras.ops.convert_to_numpy(rate))}

    def _log_train(self, step: int, output, steps_per_second: float, bad_steps: int) -> dict:
        """Logs the window's mean loss, metrics and rate, and the last step's block reports."""
        total, counted = self._window_loss
        loss = total / counted if counted else float("nan")
        self._window_loss = (0.0, 0)
        scalars: dict[str, Any] = {**self._epoch(step), "loss": loss, "bad_steps": bad_steps}
        for metric in self.train_step.metrics:
            scalars[metric.name] = float(metric.result())
            metric.reset_state()
        scalars.update(self._extra_scalars(loss))
        scalars.update(self._learning_rate())
        scalars["steps_per_second"] = steps_per_second
        self._write(
            "train",
            step,
            scalars,
            block_norms=output.block_norms.numpy(),
            block_scales=_reported(output.block_scales),
            block_log10_norms=_reported(output.block_log10_norms),
        )
        if math.isfinite(steps_per_second) and steps_per_second > 0:
            remaining = datetime.timedelta(
                seconds=round((self.total_steps - step) / steps_per_second)
            )
            rate = f"{steps_per_second:.1f} steps/s, ETA {remaining}"
        else:
            rate = "rate after the first loop (it traced the step)"
        _progress("train step %d/%d: loss %.5g, %s", step, self.total_steps, loss, rate)
        return {k: v for k, v in scalars.items() if k != "epoch"}

    def _save(self, step: int) -> None:
        if self.checkpointer is not None:
            self.checkpointer.save(step)

    def _resume(self) -> tuple[int, bool]:
        restored = self.checkpointer.restore_latest() if self.checkpointer else None
        start = self.step
        if restored:
            logging.info("Resuming at step %d of %d.", start, self.total_steps)
        dropped = self.log.rewind(start) if self.log is not None else 0
        if dropped:
            logging.info(
                "Dropped %d metrics records after step %d: those steps run again.", dropped, start
            )
        return start, restored is not None

    def _diverged(self, step: int, consecutive: int) -> TrainingDiverged:
        latest = self.checkpointer.latest() if self.checkpointer else None
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

    def _updates(self) -> int:
        """Updates taken so far, applied or skipped: a failed inner loop's steps are not counted."""
        return int(self.train_step.optimizer.iterations.numpy()) + self._bad_steps()[0]

    def _out_of_data(self) -> DataError:
        """The data ended before ``total_steps``: save what was trained and say so."""
        step = self.step
        self._save(step)
        saved = "checkpoint saved; " if self.checkpointer is not None else ""
        return DataError(
            f"the training data ran out at step {step} of {self.total_steps}: {saved}"
            "repeat the dataset (dataset.repeat()) or lower total_steps."
        )

    # -- the loop ---------------------------------------------------------------
    def run(self) -> dict:
        """Train to ``total_steps`` (resuming if a checkpoint exists), evaluate, export.

        Returns ``step``, ``epoch``, ``bad_steps_total``, ``train_<metric>``
        (last logging window) and ``eval_<metric>`` (last evaluation); a run
        already finished returns only ``step``, ``epoch`` and ``bad_steps_total``.
        """
        try:
            with StopRequest() as stop:
                return self._run(stop)
        finally:
            if self.log is not None:
                self.log.close()

    def _train(self, iterator, num_steps: int, start: int, updates_at_start: int):
        """One inner loop: ``(output, bad steps so far, seconds)``; the window's losses added."""
        started = time.perf_counter()
        try:
            output = self.train_step.loop(iterator, tf.constant(num_steps, tf.int32))
            bad_total = int(output.bad_steps.numpy())  # waits for the steps to finish
        except (tf.errors.OutOfRangeError, StopIteration):
            # The loop may have taken some of its steps before the data ended.
            self.step_counter.assign(start + self._updates() - updates_at_start)
            raise self._out_of_data() from None
        seconds = time.perf_counter() - started
        total, counted = self._window_loss
        self._window_loss = (
            total + float(output.loss_total.numpy()),
            counted + int(output.losses_counted.numpy()),
        )
        return output, bad_total, seconds

    def _run(self, stop: StopRequest) -> dict:
        start, restored = self._resume()
        if restored and start >= self.total_steps:
            # A finished run rerun: nothing to train, log or export again.
            _progress(
                "Run already finished at step %d of %d: nothing to do.", start, self.total_steps
            )
            return {"step": start, **self._epoch(start), "bad_steps_total": self._bad_steps()[0]}
        if self._check_data is not None:
            self._check_data()
        if self._on_start is not None:  # the start was accepted: resume and data both passed
            self._on_start(start)
        iterator = self.train_data(start)
        self._window_loss = (0.0, 0)  # (sum, count) of the finite losses since the last log
        final: dict[str, float] = {}
        step, saved_step = start, start if restored else -1
        window_steps, window_seconds = 0, 0.0
        window_bad_start = self._bad_steps()[0]
        traced = False  # the first inner loop traces the step: kept out of the rate
        updates_at_start = self._updates()
        while step < self.total_steps:
            target = next_event(
                step, self.total_steps, self.log_every, self.eval_every, self.checkpoint_every
            )
            num_steps = min(self.steps_per_loop, target - step)
            output, bad_total, seconds = self._train(iterator, num_steps, start, updates_at_start)
            if traced:
                window_seconds += seconds
                window_steps += num_steps
            traced = True
            step += num_steps
            self.step_counter.assign(step)
            last = step == self.total_steps
            consecutive = int(output.bad_steps_in_a_row.numpy())
            diverged = 0 < self.max_bad_steps <= consecutive
            if last or diverged or _is_due(step, self.log_every):
                # nan: the window held only the first inner loop, which traced the step.
                rate = window_steps / window_seconds if window_seconds else float("nan")
                train = self._log_train(step, output, rate, bad_total - window_bad_start)
                final.update({f"train_{k}": v for k, v in train.items()})
                window_steps, window_seconds, window_bad_start = 0, 0.0, bad_total
            if diverged:
                raise self._diverged(step, consecutive)
            if last or _is_due(step, self.eval_every):
                final.update({f"eval_{k}": v for k, v in self.evaluate().items()})
            if last or _is_due(step, self.checkpoint_every):
                self._save(step)
                saved_step = step
            if runtime.any_worker(self.strategy, stop.signum is not None):
                if saved_step != step:
                    self._save(step)
                raise self._interrupted(stop, step)
        if not any(k.startswith("eval_") for k in final):
            final.update({f"eval_{k}": v for k, v in self.evaluate().items()})
        if saved_step != step:
            self._save(step)
        if self._export is not None:
            self._export()
        final.update(step=step, **self._epoch(step), bad_steps_total=self._bad_steps()[0])
        return final


def _reported(values: tf.Tensor):
    """A block report as numpy, or None when the step reported none (an empty tensor)."""
    values = values.numpy()
    return values if values.size else None


def _progress(message: str, *args) -> None:
    """A progress line: absl INFO, printed to stderr when absl's verbosity hides INFO."""
    if logging.level_info():
        logging.info(message, *args)
    else:
        print(message % args, file=sys.stderr, flush=True)


def _format(results: dict) -> str:
    return ", ".join(f"{k} {v:.5g}" for k, v in results.items())
