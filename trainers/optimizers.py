"""The optimizer and learning-rate schedule of a config (``optimizer`` and ``schedule`` sections).

Schedule lengths are given in epochs in the configs (as in the papers) and
turned into steps here, once the number of steps per epoch is known; the
library's :func:`tf_bng.schedules.make_schedule` works in steps.
"""

from __future__ import annotations

from typing import Any

import keras

from tf_bng.adagrad_bng import AdaGradBNG
from tf_bng.optimizers import accepted_arguments, optimizer_class
from tf_bng.schedules import LearningRate, make_schedule

__all__ = ["build_schedule", "build_optimizer"]

# Config keys forwarded to the optimizer when its constructor takes them.
_FORWARDED = ("momentum", "nesterov", "weight_decay", "beta_1", "beta_2", "epsilon", "delta")
# Values that mean "off": a class without that argument may silently ignore them.
_NEUTRAL = {"momentum": 0.0, "nesterov": False, "weight_decay": 0.0}


def _steps(epochs: Any, steps_per_epoch: int) -> int:
    return int(round(float(epochs) * steps_per_epoch))


def build_schedule(
    schedule: Any, learning_rate: float, *, steps_per_epoch: int, total_steps: int
) -> LearningRate:
    """``schedule.name`` with its epochs converted to steps (see :func:`make_schedule`)."""
    get = schedule.get
    decay_epochs = float(get("decay_epochs", 0) or 0)
    return make_schedule(
        schedule.name,
        learning_rate,
        total_steps=total_steps,
        warmup_steps=_steps(get("warmup_epochs", 0) or 0, steps_per_epoch),
        boundaries=[_steps(b, steps_per_epoch) for b in get("boundaries", ()) or ()],
        decay_rate=float(get("decay_rate", 0.1)),
        decay_steps=_steps(decay_epochs, steps_per_epoch) if decay_epochs > 0 else 0,
        end_learning_rate=float(get("end_learning_rate", 0.0) or 0.0),
        power=float(get("power", 1.0) or 1.0),
    )


def build_optimizer(
    optimizer: Any, *, learning_rate: LearningRate, transform: Any = None
) -> keras.optimizers.Optimizer:
    """The optimizer named ``optimizer.name`` with the config's hyper-parameters.

    Only the arguments the class takes are passed; a non-neutral value it
    cannot take (``momentum`` for Adam) is an error rather than a silent no-op.
    ``weight_decay`` is Keras's decoupled decay (``w -= lr * wd * w``, applied
    by the optimizer, so the block transform never rescales it);
    ``optimizer.exclude_from_weight_decay`` (regexes on variable names) is
    passed to Keras's own ``exclude_from_weight_decay``.
    ``adagrad_bng`` takes its norm, blocks and exclude from ``transform``.
    """
    cls = optimizer_class(optimizer.name)
    accepted = accepted_arguments(cls)
    kwargs: dict[str, Any] = {"learning_rate": learning_rate}
    for key in _FORWARDED:
        if key not in optimizer:
            continue
        value = optimizer[key]
        if key in accepted:
            if key == "weight_decay" and not value:
                continue  # Keras: None disables decay; 0.0 would still add ops
            kwargs[key] = value
        elif key in _NEUTRAL and value != _NEUTRAL[key]:
            raise ValueError(f"optimizer.{key}={value!r} is not an argument of {cls.__name__}.")
    if cls is AdaGradBNG and transform is not None:
        kwargs.update(
            norm=transform.norm, blocks=transform.blocks, exclude=tuple(transform.exclude)
        )
    instance = cls(**kwargs)
    excluded = tuple(optimizer.get("exclude_from_weight_decay", ()) or ())
    if excluded:
        instance.exclude_from_weight_decay(var_names=list(excluded))
    return instance
