"""One experiment config -> the library objects of a run -> :class:`tf_bng.training.Controller`.

The one place where a ConfigDict becomes objects (big_vision's train.py
pattern): :class:`Experiment` builds the strategy, data, model, optimizer,
transform, train and eval steps, checkpointer and metrics log from the
config, and hands them to the library's config-free Controller. Each value
is validated once, by the library constructor that takes it, built under
:func:`~.config_checks.config_errors` (a bad value: one line naming the key,
exit code 2); :func:`~.config_checks.validate_config` first checks what no
constructor does.
``train_and_evaluate(config, workdir)`` runs (or resumes) it.

What a run leaves in ``workdir`` (and nothing anywhere else):
``config.json``, ``metrics.jsonl``, ``summaries/{train,eval}``
(TensorBoard), ``checkpoints/``, and ``export/`` when ``config.export`` is
set.
"""

from __future__ import annotations

import os
from typing import Any

import keras
import tensorflow as tf
from absl import logging

from tf_bng import data as data_lib
from tf_bng import models as models_lib
from tf_bng.step import DynamicLossScale, EvalStep, TrainStep
from tf_bng.training import data_checks, input_pipeline, runtime
from tf_bng.training.checkpointing import Checkpointer
from tf_bng.training.controller import Controller
from tf_bng.training.export import export_saved_model, serving_spec
from tf_bng.training.metrics_log import MetricsLog

from . import config_checks, optimizers

__all__ = ["Experiment", "train_and_evaluate", "data_options", "model_options"]


def data_options(data: Any) -> dict:
    """The ``data`` section as keyword options of :func:`tf_bng.data.build_dataset`."""
    return {k: v for k, v in data.to_dict().items() if v is not None}


def model_options(model: Any) -> dict:
    """The ``model`` section as keyword options of :func:`tf_bng.models.build_model`."""
    return {k: v for k, v in model.to_dict().items() if v is not None}


class Experiment:
    """The run described by ``config``: everything built in ``__init__``; ``run()`` trains.

    Tests and the demo use the attributes (``model``, ``strategy``,
    ``train_step``, ``controller``, ``total_steps``...) to inspect a run.
    """

    def __init__(self, config: Any, workdir: str):
        settings = config_checks.validate_config(config)
        config_checks.check_workdir(workdir)
        self.config = config
        self.workdir = workdir
        rt = config.runtime
        runtime.configure_virtual_cpus(int(rt.virtual_cpus))
        with config_checks.config_errors("runtime"):
            self.strategy = runtime.make_strategy(
                rt.strategy,
                collective_timeout=rt.collective_timeout,
                tpu=rt.tpu,
                startup_timeout=rt.startup_timeout,
            )
        self.is_chief = runtime.is_chief(self.strategy)
        logging.info(
            "Strategy %s: %d replicas in sync%s.",
            type(self.strategy).__name__,
            self.strategy.num_replicas_in_sync,
            "" if self.is_chief else " (not the chief)",
        )
        batch = int(config.data.batch_size)
        config_checks.check_replicas(batch, self.strategy)
        self.seed = int(config.train.seed)
        runtime.set_determinism(self.seed, bool(rt.deterministic))

        self.data = data_options(config.data)
        with config_checks.config_errors("data"):
            self.spec = data_lib.get_spec(self.data)
        config_checks.check_batch_fits(batch, self.spec)
        train = config.train
        self.accumulation_steps = int(train.get("accumulation_steps", 1) or 1)
        # A step is one update: accumulation_steps batches of data.batch_size.
        self.steps_per_epoch = max(1, self.spec.steps_per_epoch(batch) // self.accumulation_steps)
        self.total_steps = int(train.steps) or max(1, round(train.epochs * self.steps_per_epoch))

        with self.strategy.scope():
            self._build_model_and_optimizer(settings)
        with config_checks.config_errors("train step"):
            self.train_step = TrainStep(
                model=self.model,
                loss=models_lib.default_loss(self.spec),
                optimizer=self.optimizer,
                transform=settings.transform,
                global_batch_size=batch,
                strategy=self.strategy,
                metrics=self.train_metrics,
                jit_compile=bool(rt.jit_compile),
                loss_scale=self.loss_scale,
                skip_nonfinite=True,
                **settings.step_options,
            )
        self.eval_step = EvalStep(self.train_step, task=self.spec.task)
        self.checkpointer = self._make_checkpointer()
        self.log = MetricsLog(
            workdir, enabled=self.is_chief, block_names=self.train_step.block_names
        )
        self._eval_dataset = None
        every = lambda key: int(train[key]) or self.steps_per_epoch  # noqa: E731  0: once per epoch
        with config_checks.config_errors("train"):
            self.controller = Controller(
                train_step=self.train_step,
                train_data=self._train_iterator,
                total_steps=self.total_steps,
                step_counter=self.step_counter,
                steps_per_loop=int(train.steps_per_loop),
                log_every=every("log_every"),
                eval_every=every("eval_every"),
                checkpoint_every=every("checkpoint_every"),
                evaluate=self._evaluate,
                checkpointer=self.checkpointer,
                log=self.log,
                export=self.export if config.export else None,
                on_start=lambda start: self._write_config(),
                check_data=self._check_data,
                max_bad_steps=int(train.get("max_bad_steps", 0) or 0),
                steps_per_epoch=self.steps_per_epoch,
                extra_scalars=self._extra_scalars,
                strategy=self.strategy,
            )

    # -- building -------------------------------------------------------------
    def _build_model_and_optimizer(self, settings) -> None:
        """Everything that holds variables; called inside ``strategy.scope()``."""
        config, rt = self.config, self.config.runtime
        with config_checks.config_errors("model"), runtime.precision_scope(rt.mixed_precision):
            self.model = models_lib.build_model(model_options(config.model), spec=self.spec)
        with config_checks.config_errors("optimizer"):
            learning_rate = optimizers.build_schedule(
                config.schedule,
                config.optimizer.learning_rate,
                steps_per_epoch=self.steps_per_epoch,
                total_steps=self.total_steps,
            )
            self.optimizer = optimizers.build_optimizer(
                config.optimizer, learning_rate=learning_rate, transform=settings.transform
            )
        self.loss_scale = None
        if rt.mixed_precision == "mixed_float16":
            with config_checks.config_errors("runtime"):
                self.loss_scale = DynamicLossScale(
                    initial_scale=float(rt.loss_scale_initial),
                    growth_interval=int(rt.loss_scale_growth_interval),
                )
        self.step_counter = tf.Variable(
            0,
            dtype=tf.int64,
            trainable=False,
            name="global_step",
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
        trackables.update(self.train_step.checkpoint_items())
        with config_checks.config_errors("train"):
            return Checkpointer(
                os.path.join(self.workdir, "checkpoints"),
                strategy=self.strategy,
                max_to_keep=int(self.config.train.get("keep_checkpoints", 3)),
                **trackables,
            )

    # -- what the controller calls --------------------------------------------
    def _dataset_fn(self, split: str, training: bool):
        def build(seed: int, context=None) -> tf.data.Dataset:
            return data_lib.build_dataset(
                self.data, split=split, training=training, seed=seed, input_context=context
            )

        return build

    def _train_iterator(self, start_step: int):
        return input_pipeline.resumable_iterator(
            self.strategy,
            self._dataset_fn("train", training=True),
            seed=self.seed,
            start_step=start_step,
            fast_forward=bool(self.config.train.fast_forward_input),
            batches_per_step=self.accumulation_steps,
        )

    def _evaluate(self) -> dict:
        if self._eval_dataset is None:
            self._eval_dataset = input_pipeline.distribute(
                self.strategy, self._dataset_fn("eval", training=False), seed=self.seed
            )
        return self.eval_step.evaluate(self._eval_dataset)

    def _check_data(self) -> None:
        data_checks.check_first_batches(
            lambda split: self._dataset_fn(split, training=False)(self.seed),
            spec=self.spec,
            input_shape=data_checks.model_input_shape(self.model, self.spec),
        )

    def _extra_scalars(self, loss: float) -> dict:
        """Perplexity for language models, f - f* for the quadratic."""
        if self.spec.task == "language_model":
            return {"perplexity": float(tf.exp(tf.minimum(loss, 700.0)))}
        if self.spec.task == "quadratic":
            problem = getattr(self.model, "problem", None)
            return {"suboptimality": loss - problem.optimum} if problem is not None else {}
        return {}

    def export(self) -> str:
        element_spec = self._dataset_fn("eval", training=False)(self.seed).element_spec
        path = os.path.join(self.workdir, "export")
        export_saved_model(self.model, path, serving_spec(element_spec), strategy=self.strategy)
        logging.info("Exported the SavedModel to %s", path)
        return path

    # -- running ----------------------------------------------------------------
    @property
    def step(self) -> int:
        return self.controller.step

    def evaluate(self) -> dict:
        return self.controller.evaluate()

    def _write_config(self) -> None:
        if not self.is_chief:
            return
        tf.io.gfile.makedirs(self.workdir)
        with tf.io.gfile.GFile(os.path.join(self.workdir, "config.json"), "w") as f:
            f.write(self.config.to_json_best_effort(indent=2, sort_keys=True) + "\n")

    def run(self) -> dict:
        """Train to ``total_steps`` (resuming if a checkpoint exists), evaluate, export.

        ``config.json`` is written only once the start is accepted (the Controller's
        ``on_start``): a refused resume or a bad first batch leaves the old one.
        """
        try:
            return self.controller.run()
        except runtime.CLUSTER_ERRORS as e:
            if not isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy):
                raise
            lost = runtime.lost_worker_error(self.strategy, e, self.checkpointer.latest())
            if lost is None:
                raise
            raise lost from e


def train_and_evaluate(config: Any, workdir: str) -> dict:
    """Run (or resume) the experiment ``config`` in ``workdir``; returns the final metrics.

    Keys: ``step``, ``epoch``, ``bad_steps_total``, ``train_<metric>`` (last
    logging window, with ``train_bad_steps``), ``eval_<metric>`` (last
    evaluation). Raises a :class:`tf_bng.errors.RunError` subclass when the
    run refuses to start or stops early.
    """
    return Experiment(config, workdir).run()
