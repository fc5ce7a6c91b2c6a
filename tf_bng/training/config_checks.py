"""Up-front validation of a run config, with one-line messages.

``ml_collections`` checks key names and types of overrides; the *values*
(``transform.name=foo``) are checked here before anything heavy runs, so a
typo fails in a second with a message naming the key and the valid choices.
"""

from __future__ import annotations

from typing import Any, Iterable

from tf_bng import data as data_lib
from tf_bng import models as models_lib
from tf_bng.blocks import BLOCK_MODES
from tf_bng.norms import available_norms
from tf_bng.training.optimizers import SCHEDULES, optimizer_classes
from tf_bng.training.runtime import PRECISIONS, STRATEGIES
from tf_bng.transforms import TRANSFORMS, TransformConfig

__all__ = ["ConfigError", "validate_config", "transform_config"]


class ConfigError(ValueError):
    """An invalid config value; the message is one line naming the key."""


def _choice(key: str, value: Any, valid: Iterable[str]) -> None:
    valid = list(valid)
    if value not in valid:
        raise ConfigError(f"{key}={value!r} is not valid; choose one of: {', '.join(map(str, valid))}.")


def _positive(key: str, value: Any, *, allow_zero: bool = False) -> None:
    if not (value >= 0 if allow_zero else value > 0):
        raise ConfigError(f"{key}={value!r} must be {'>= 0' if allow_zero else '> 0'}.")


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
        )
    except ValueError as e:
        raise ConfigError(f"transform: {e}") from None


def validate_config(config: Any) -> None:
    """Raise :class:`ConfigError` on the first invalid value of ``config``."""
    _choice("data.name", config.data.name, data_lib.DATASETS)
    _positive("data.batch_size", config.data.batch_size)
    _choice("model.name", config.model.name, models_lib.MODELS)
    _choice("optimizer.name", str(config.optimizer.name).lower(), sorted(optimizer_classes()))
    _positive("optimizer.learning_rate", config.optimizer.learning_rate)
    _choice("schedule.name", config.schedule.name, SCHEDULES)
    _choice("transform.name", config.transform.name, TRANSFORMS)
    _choice("transform.norm", config.transform.norm, available_norms())
    _choice("transform.blocks", config.transform.blocks, BLOCK_MODES)
    transform_config(config.transform)
    _positive("train.epochs", config.train.epochs, allow_zero=True)
    _positive("train.steps", config.train.steps, allow_zero=True)
    if not config.train.epochs and not config.train.steps:
        raise ConfigError("train.epochs and train.steps are both 0: nothing to train.")
    _positive("train.steps_per_loop", config.train.steps_per_loop)
    for key in ("log_every", "eval_every", "checkpoint_every"):
        _positive(f"train.{key}", config.train[key], allow_zero=True)
    _choice("runtime.strategy", config.runtime.strategy, STRATEGIES)
    _choice("runtime.mixed_precision", config.runtime.mixed_precision, PRECISIONS)
    _positive("runtime.virtual_cpus", config.runtime.virtual_cpus, allow_zero=True)
