"""Up-front validation of a run, with one-line messages, before anything trains.

``ml_collections`` checks key names and types of overrides; the *values*
(``transform.name=foo``, ``optimizer.learning_rate=-1``) are checked by
:func:`validate_config` before anything heavy runs, so a typo fails in a
second with a message naming the key and the valid choices. What depends on
the machine is checked by the loop as soon as it is known: the workdir
(:func:`check_workdir`), the replicas (:func:`check_replicas`), the data's
size (:func:`check_batch_fits`). Builders that reject a value (a model's
depth, a Keras optimizer argument) are wrapped by :func:`config_errors`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import tensorflow as tf

from tf_bng import data as data_lib
from tf_bng import models as models_lib
from tf_bng.blocks import BLOCK_MODES
from tf_bng.data.spec import DatasetSpec
from tf_bng.errors import ConfigError, RunError, one_line
from tf_bng.norms import available_norms
from tf_bng.optimizers import optimizer_classes
from tf_bng.schedules import SCHEDULES
from tf_bng.training.runtime import PRECISIONS, STRATEGIES
from tf_bng.transforms import TRANSFORMS, TransformConfig

__all__ = [
    "ConfigError",
    "Settings",
    "validate_config",
    "transform_config",
    "check_workdir",
    "check_replicas",
    "check_batch_fits",
    "config_errors",
]


def _choice(key: str, value: Any, valid: Iterable[str]) -> None:
    valid = list(valid)
    if value not in valid:
        choices = ", ".join(map(str, valid))
        raise ConfigError(f"{key}={value!r} is not valid; choose one of: {choices}.")


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ConfigError(f"{key}={value!r} must be a number.")
    return value


def _positive(key: str, value: Any, *, allow_zero: bool = False) -> None:
    value = _number(key, value)
    if math.isinf(value) or not (value >= 0 if allow_zero else value > 0):
        raise ConfigError(f"{key}={value!r} must be {'>= 0' if allow_zero else '> 0'} and finite.")


def _fraction(key: str, value: Any, *, closed: bool) -> None:
    """A value in [0, 1) (``closed``: [0, 1])."""
    value = _number(key, value)
    if not (0 <= value <= 1 if closed else 0 <= value < 1):
        raise ConfigError(f"{key}={value!r} must be in [0, 1{']' if closed else ')'}.")


def transform_config(transform: Any) -> TransformConfig:
    """The ``transform`` section as a validated :class:`tf_bng.TransformConfig`."""
    try:
        return TransformConfig(
            transform=transform.name,
            norm=transform.norm,
            blocks=transform.blocks,
            alpha=transform.alpha,
            threshold=transform.threshold,
            exclude=tuple(transform.exclude),
            epsilon=transform.epsilon,
            max_scale=transform.get("max_scale"),
            groups=tuple(transform.get("groups", ()) or ()),
        )
    except ValueError as e:
        raise ConfigError(f"transform: {one_line(e)}") from None


def _validate_optimizer(optimizer: Any) -> None:
    _choice("optimizer.name", str(optimizer.name).lower(), sorted(optimizer_classes()))
    _positive("optimizer.learning_rate", optimizer.learning_rate)
    checks = {
        "momentum": lambda k, v: _fraction(k, v, closed=True),
        "beta_1": lambda k, v: _fraction(k, v, closed=False),
        "beta_2": lambda k, v: _fraction(k, v, closed=False),
        "epsilon": lambda k, v: _positive(k, v, allow_zero=True),
        "weight_decay": lambda k, v: _positive(k, v, allow_zero=True),
        "delta": lambda k, v: _positive(k, v, allow_zero=True),
    }
    for key, check in checks.items():
        if key in optimizer:
            check(f"optimizer.{key}", optimizer[key])


def _validate_schedule(schedule: Any) -> None:
    _choice("schedule.name", schedule.name, SCHEDULES)
    _positive("schedule.decay_rate", schedule.decay_rate)
    for key in ("warmup_epochs", "end_learning_rate"):
        if key in schedule:
            _positive(f"schedule.{key}", schedule[key], allow_zero=True)
    boundaries = [_number("schedule.boundaries", b) for b in schedule.boundaries]
    if boundaries != sorted(set(boundaries)) or (boundaries and boundaries[0] <= 0):
        raise ConfigError(
            f"schedule.boundaries={tuple(schedule.boundaries)!r} must be increasing epochs > 0."
        )


def _validate_transform(transform: Any) -> TransformConfig:
    _choice("transform.name", transform.name, TRANSFORMS)
    _choice("transform.norm", transform.norm, available_norms())
    _choice("transform.blocks", transform.blocks, BLOCK_MODES)
    _positive("transform.alpha", transform.alpha)
    _positive("transform.threshold", transform.threshold)
    _positive("transform.epsilon", transform.epsilon, allow_zero=True)
    return transform_config(transform)


def _validate_train(train: Any) -> None:
    _positive("train.epochs", train.epochs, allow_zero=True)
    _positive("train.steps", train.steps, allow_zero=True)
    if not train.epochs and not train.steps:
        raise ConfigError("train.epochs and train.steps are both 0: nothing to train.")
    _positive("train.steps_per_loop", train.steps_per_loop)
    if "accumulation_steps" in train:
        steps = train.accumulation_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ConfigError(f"train.accumulation_steps={steps!r} must be an integer >= 1.")
    for key in ("log_every", "eval_every", "checkpoint_every", "max_bad_steps"):
        if key in train:
            _positive(f"train.{key}", train[key], allow_zero=True)
    if "keep_checkpoints" in train:
        _positive("train.keep_checkpoints", train.keep_checkpoints)


# Strategies under which the XLA-compiled step runs today; under tf.distribute
# on CPU it fails (a resource on another device), a later issue extends XLA.
# (under mirrored and multi_worker only the transform is compiled: see TrainStep).
JIT_STRATEGIES = ("default", "one_device", "mirrored", "multi_worker")


def _validate_runtime(runtime: Any) -> None:
    _choice("runtime.strategy", runtime.strategy, STRATEGIES)
    if runtime.jit_compile and runtime.strategy not in JIT_STRATEGIES:
        raise ConfigError(
            f"runtime.jit_compile=True does not apply to runtime.strategy={runtime.strategy!r} "
            "(it compiles the step itself); set runtime.jit_compile=False."
        )
    _choice("runtime.mixed_precision", runtime.mixed_precision, PRECISIONS)
    _positive("runtime.virtual_cpus", runtime.virtual_cpus, allow_zero=True)
    _positive("runtime.loss_scale_initial", runtime.loss_scale_initial)
    _positive("runtime.loss_scale_growth_interval", runtime.loss_scale_growth_interval)
    _positive("runtime.collective_timeout", runtime.collective_timeout, allow_zero=True)
    _positive("runtime.startup_timeout", runtime.startup_timeout, allow_zero=True)


def _validate_combination(optimizer: Any, transform: Any) -> None:
    """AdaGradBNG normalizes each block itself: a block transform before it would do it twice."""
    if str(optimizer.name).lower() == "adagrad_bng" and transform.name != "none":
        raise ConfigError(
            f"optimizer.name='adagrad_bng' normalizes each block itself, so "
            f"transform.name={transform.name!r} would normalize twice; set transform.name=none "
            "or choose another optimizer."
        )


@dataclasses.dataclass(frozen=True)
class Settings:
    """What validation built once, for the experiment to use as is."""

    transform: TransformConfig
    step_options: dict = dataclasses.field(default_factory=dict)


def validate_config(config: Any) -> Settings:
    """Raise :class:`ConfigError` on the first invalid value of ``config``.

    Every key is checked once, here; the :class:`TransformConfig` built on
    the way is returned so that nothing downstream checks it again.
    """
    _choice("data.name", config.data.name, data_lib.DATASETS)
    _positive("data.batch_size", config.data.batch_size)
    if config.data.get("limit") is not None:
        _positive("data.limit", config.data.limit)
    _choice("model.name", config.model.name, models_lib.MODELS)
    _validate_optimizer(config.optimizer)
    _validate_schedule(config.schedule)
    transform = _validate_transform(config.transform)
    _validate_combination(config.optimizer, config.transform)
    _validate_train(config.train)
    _validate_runtime(config.runtime)
    steps = int(config.train.get("accumulation_steps", 1) or 1)
    scaling = config.transform.get("backward_scaling", False)
    if not isinstance(scaling, bool):
        raise ConfigError(f"transform.backward_scaling={scaling!r} must be true or false.")
    if scaling and config.transform.name not in ("ng", "ng_adap"):
        raise ConfigError(
            f"transform.backward_scaling=True needs transform.name=ng or ng_adap (it changes "
            f"gradient magnitudes, which transform.name={config.transform.name!r} uses)."
        )
    return Settings(
        transform=transform,
        step_options={"accumulation_steps": steps, "backward_scaling": scaling},
    )


def check_workdir(workdir: str) -> None:
    """The workdir exists or can be created, and a file can be written in it."""
    if not workdir:
        raise ConfigError("workdir is empty: pass --workdir=DIR, a directory you can write to.")
    probe = os.path.join(workdir, f".write_test_{uuid.uuid4().hex}")
    try:
        tf.io.gfile.makedirs(workdir)
        with tf.io.gfile.GFile(probe, "w") as f:
            f.write("")
        tf.io.gfile.remove(probe)
    except (tf.errors.OpError, OSError) as e:
        reason = one_line(e).split(";")[0]
        raise ConfigError(
            f"workdir {workdir!r} is not writable ({reason}); choose a directory you can write to."
        ) from None


def check_replicas(batch_size: int, strategy: tf.distribute.Strategy) -> None:
    replicas = strategy.num_replicas_in_sync
    if int(batch_size) % replicas:
        raise ConfigError(
            f"data.batch_size={batch_size} is not divisible by the {replicas} replicas of "
            f"runtime.strategy ({type(strategy).__name__}); choose a multiple of {replicas}."
        )


def check_batch_fits(batch_size: int, spec: DatasetSpec) -> None:
    """A training batch needs at least ``batch_size`` examples (the remainder is dropped)."""
    if int(batch_size) > spec.train_examples:
        raise ConfigError(
            f"data.batch_size={batch_size} is larger than the {spec.train_examples} training "
            f"examples of {spec.name} (see data.limit); choose at most {spec.train_examples}."
        )


@contextlib.contextmanager
def config_errors(section: str) -> Iterator[None]:
    """Turn a builder's ``ValueError`` into a one-line :class:`ConfigError` naming ``section``."""
    try:
        yield
    except RunError:
        raise
    except ValueError as e:
        raise ConfigError(f"{section}: {one_line(e)}") from e
