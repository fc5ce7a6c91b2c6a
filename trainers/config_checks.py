"""A run's config errors as one line naming the key: the library validates, this module names.

Each config value is validated once, by the library constructor that uses it
(``TransformConfig``, ``TrainStep``, ``make_schedule``, ``make_strategy``,
``DynamicLossScale``, the ``Controller``...). The experiment builds them
inside :func:`config_errors`, which turns their ``ValueError`` into a
:class:`~tf_bng.errors.ConfigError` (exit code 2) whose message starts with
the config key the library argument came from, followed by the library's own
message and its valid choices::

    error: transform.norm: Unknown norm 'l3'. Registered norms: avg_l1, ...

What stays here: the checks that need the machine (:func:`check_workdir`,
:func:`check_replicas`, :func:`check_batch_fits`), and in
:func:`validate_config` the values no library constructor checks (Keras
validates no learning rate or beta; the Controller takes any interval) and
the combinations of two sections.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import re
import uuid
from collections.abc import Iterator
from typing import Any

import tensorflow as tf

from tf_bng.data.spec import DatasetSpec
from tf_bng.errors import ConfigError, RunError, one_line
from tf_bng.transforms import TransformConfig

__all__ = [
    "Settings",
    "validate_config",
    "transform_config",
    "check_workdir",
    "check_replicas",
    "check_batch_fits",
    "config_errors",
    "LIBRARY_ARGUMENTS",
]

#: For each section the experiment builds under :func:`config_errors`: the words by which
#: library messages name their arguments -> the config key that fed the argument.
LIBRARY_ARGUMENTS: dict[str, dict[str, str]] = {
    "data": {"dataset": "data.name", "limit": "data.limit"},
    "model": {"model": "model.name", "precision": "runtime.mixed_precision"},
    "optimizer": {
        "optimizer": "optimizer.name",
        "momentum": "optimizer.momentum",
        "delta": "optimizer.delta",
        "schedule": "schedule.name",
        "boundaries": "schedule.boundaries",
        "warmup_steps": "schedule.warmup_epochs",
    },
    "transform": {
        "transform": "transform.name",
        "norm": "transform.norm",
        "blocks": "transform.blocks",
        "alpha": "transform.alpha",
        "threshold": "transform.threshold",
        "epsilon": "transform.epsilon",
        "max_scale": "transform.max_scale",
        "exclude": "transform.exclude",
        "group": "transform.groups",
        "Group": "transform.groups",
    },
    "train step": {
        "global_batch_size": "data.batch_size",
        "accumulation_steps": "train.accumulation_steps",
        "backward_scaling": "transform.backward_scaling",
    },
    "runtime": {
        "strategy": "runtime.strategy",
        "initial_scale": "runtime.loss_scale_initial",
        "growth_interval": "runtime.loss_scale_growth_interval",
    },
    "train": {
        "steps_per_loop": "train.steps_per_loop",
        "max_to_keep": "train.keep_checkpoints",
    },
}
_SECTIONS = ("data", "model", "optimizer", "schedule", "transform", "train", "runtime")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")


def _named_keys(message: str, sections: tuple[str, ...]) -> list[str] | None:
    """The config keys ``message`` is about, in order; None when it already names one."""
    words = _WORD.findall(message)
    if words and "." in words[0] and words[0].split(".")[0] in _SECTIONS:
        return None  # "data.limit must be positive, got 0.": the library named the key
    table = {}
    for section in sections:
        table.update(LIBRARY_ARGUMENTS.get(section, {}))
    keys: list[str] = []
    for word in words:
        key = table.get(word)
        if key is not None and key not in keys:
            keys.append(key)
    return keys


@contextlib.contextmanager
def config_errors(*sections: str) -> Iterator[None]:
    """Turn a library constructor's ``ValueError`` into a one-line :class:`ConfigError`.

    Args:
        *sections: The config sections whose values the wrapped code passes on ("data",
            "train step", ...; see :data:`LIBRARY_ARGUMENTS`). The message starts with the
            config keys the library message names, else with the first section.

    Raises:
        ConfigError: ``<key>: <the library's message>``.
    """
    try:
        yield
    except RunError:
        raise
    except ValueError as e:
        message = one_line(e)
        keys = _named_keys(message, sections)
        if keys is None:
            raise ConfigError(message) from e
        raise ConfigError(f"{' / '.join(keys) or sections[0]}: {message}") from e


def transform_config(transform: Any) -> TransformConfig:
    """The ``transform`` section as a :class:`tf_bng.TransformConfig` (which validates it)."""
    with config_errors("transform"):
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


# -- the values no library constructor validates ---------------------------------------------


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


def _validate_optimizer(optimizer: Any) -> None:
    """Keras takes any learning rate, beta and epsilon (it checks only SGD's momentum)."""
    _positive("optimizer.learning_rate", optimizer.learning_rate)
    checks = {
        "momentum": lambda k, v: _fraction(k, v, closed=True),  # RMSprop's too
        "beta_1": lambda k, v: _fraction(k, v, closed=False),
        "beta_2": lambda k, v: _fraction(k, v, closed=False),
        "epsilon": lambda k, v: _positive(k, v, allow_zero=True),
        "weight_decay": lambda k, v: _positive(k, v, allow_zero=True),
    }
    for key, check in checks.items():
        if key in optimizer:
            check(f"optimizer.{key}", optimizer[key])


def _validate_schedule(schedule: Any) -> None:
    """``make_schedule`` checks the name, boundaries and warmup; not these numbers."""
    _positive("schedule.decay_rate", schedule.decay_rate)
    if "end_learning_rate" in schedule:
        _positive("schedule.end_learning_rate", schedule.end_learning_rate, allow_zero=True)


def _validate_train(train: Any) -> None:
    """The lengths and intervals in epochs or steps the Controller takes as given."""
    _positive("train.epochs", train.epochs, allow_zero=True)
    _positive("train.steps", train.steps, allow_zero=True)
    if not train.epochs and not train.steps:
        raise ConfigError("train.epochs and train.steps are both 0: nothing to train.")
    for key in ("log_every", "eval_every", "checkpoint_every", "max_bad_steps"):
        if key in train:
            _positive(f"train.{key}", train[key], allow_zero=True)


# Strategies under which the XLA-compiled step runs today; under tf.distribute
# on CPU it fails (a resource on another device), a later issue extends XLA.
# (under mirrored and multi_worker only the transform is compiled: see TrainStep).
JIT_STRATEGIES = ("default", "one_device", "mirrored", "multi_worker")


def _validate_runtime(runtime: Any) -> None:
    """The XLA/strategy combination and the counts and timeouts ``runtime`` takes as given."""
    if runtime.jit_compile and runtime.strategy not in JIT_STRATEGIES:
        raise ConfigError(
            f"runtime.jit_compile=True does not apply to runtime.strategy={runtime.strategy!r} "
            "(it compiles the step itself); set runtime.jit_compile=False."
        )
    _positive("runtime.virtual_cpus", runtime.virtual_cpus, allow_zero=True)
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
    """Check what can be checked before anything is built; raise :class:`ConfigError` on the first.

    Builds the :class:`TransformConfig` (the library validates the ``transform``
    section) and checks the values no library constructor validates. The rest
    (names, the data, model, schedule, step, loss scale and strategy settings)
    is validated by the constructors the experiment calls under
    :func:`config_errors`.

    Returns:
        The transform settings and ``TrainStep`` options, built once.
    """
    _validate_optimizer(config.optimizer)
    _validate_schedule(config.schedule)
    transform = transform_config(config.transform)
    _validate_combination(config.optimizer, config.transform)
    _validate_train(config.train)
    _validate_runtime(config.runtime)
    return Settings(
        transform=transform,
        step_options={
            "accumulation_steps": config.train.get("accumulation_steps", 1),
            "backward_scaling": config.transform.get("backward_scaling", False),
        },
    )


# -- what needs the machine --------------------------------------------------------------------


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
    """``data.batch_size`` splits evenly over the strategy's replicas."""
    replicas = strategy.num_replicas_in_sync
    if int(batch_size) % replicas:
        raise ConfigError(
            f"data.batch_size={batch_size} is not divisible by the {replicas} replicas of "
            f"runtime.strategy ({type(strategy).__name__}); choose a multiple of {replicas}."
        )


def check_batch_fits(batch_size: int, spec: DatasetSpec) -> None:
    """A training batch needs at least ``batch_size`` examples (the remainder is dropped).

    A size below 1 is refused here too, not only by ``TrainStep``: the steps per
    epoch are computed from it before the step is built.
    """
    if int(batch_size) < 1:
        raise ConfigError(f"data.batch_size={batch_size} must be >= 1.")
    if int(batch_size) > spec.train_examples:
        raise ConfigError(
            f"data.batch_size={batch_size} is larger than the {spec.train_examples} training "
            f"examples of {spec.name} (see data.limit); choose at most {spec.train_examples}."
        )
