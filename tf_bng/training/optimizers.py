"""Keras 3 optimizers and learning-rate schedules from a config section.

Any optimizer class of ``keras.optimizers`` is reachable by its lowercase
name (``sgd``, ``adam``, ``adamw``, ``lion``, ``lamb``, ...), plus
``adagrad_bng``. Schedule boundaries are given in epochs (as in the papers)
and converted to steps here, once the number of steps per epoch is known.
"""

from __future__ import annotations

import inspect
from typing import Any, Union

import keras

from tf_bng.adagrad_bng import AdaGradBNG

__all__ = [
    "SCHEDULES",
    "optimizer_classes",
    "build_schedule",
    "build_optimizer",
]

SCHEDULES = ("constant", "piecewise", "exponential")
_NOT_OPTIMIZERS = {"optimizer", "lossscaleoptimizer", "multioptimizer"}
# Config keys forwarded to the optimizer when its constructor takes them.
_FORWARDED = ("momentum", "nesterov", "weight_decay", "beta_1", "beta_2", "epsilon", "delta")
# Values that mean "off": a class without that argument may silently ignore them.
_NEUTRAL = {"momentum": 0.0, "nesterov": False, "weight_decay": 0.0}

LearningRate = Union[float, keras.optimizers.schedules.LearningRateSchedule]


def optimizer_classes() -> dict[str, type]:
    """Lowercase identifier -> optimizer class."""
    classes = {
        name.lower(): cls
        for name, cls in vars(keras.optimizers).items()
        if inspect.isclass(cls)
        and issubclass(cls, keras.optimizers.Optimizer)
        and name.lower() not in _NOT_OPTIMIZERS
    }
    classes["adagrad_bng"] = AdaGradBNG
    return classes


def build_schedule(
    schedule: Any, learning_rate: float, *, steps_per_epoch: int, total_steps: int
) -> LearningRate:
    """``schedule.name``: constant | piecewise | exponential.

    piecewise: the rate is multiplied by ``decay_rate`` at each epoch of
    ``boundaries`` (ResNet: 0.1 at 80 and 120). exponential: the rate is
    multiplied by ``decay_rate`` every ``decay_epochs`` epochs, continuously;
    ``decay_epochs`` <= 0 means over the whole run.
    """
    name = schedule.name
    lr = float(learning_rate)
    if name == "constant":
        return lr
    if name == "piecewise":
        boundaries = [int(round(float(b) * steps_per_epoch)) for b in schedule.boundaries]
        if boundaries != sorted(set(boundaries)) or (boundaries and boundaries[0] <= 0):
            raise ValueError(
                f"schedule.boundaries must be increasing epochs > 0; got {schedule.boundaries!r}."
            )
        if not boundaries:
            return lr
        values = [lr * float(schedule.decay_rate) ** i for i in range(len(boundaries) + 1)]
        return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    if name == "exponential":
        epochs = float(schedule.decay_epochs)
        decay_steps = epochs * steps_per_epoch if epochs > 0 else total_steps
        return keras.optimizers.schedules.ExponentialDecay(
            lr, decay_steps=max(1, int(round(decay_steps))), decay_rate=float(schedule.decay_rate)
        )
    raise ValueError(f"Unknown schedule.name {name!r}; valid: {', '.join(SCHEDULES)}.")


def _accepted_arguments(cls: type) -> set[str]:
    params = inspect.signature(cls.__init__).parameters
    names = set(params)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        names |= set(inspect.signature(keras.optimizers.Optimizer.__init__).parameters)
    return names


def build_optimizer(
    optimizer: Any, *, learning_rate: LearningRate, transform: Any = None
) -> keras.optimizers.Optimizer:
    """The optimizer named ``optimizer.name`` with the config's hyper-parameters.

    Only the arguments the class takes are passed; a non-neutral value it
    cannot take (``momentum`` for Adam) is an error rather than a silent no-op.
    ``weight_decay`` is Keras's decoupled decay (``w -= lr * wd * w``, applied
    by the optimizer, so the block transform never rescales it).
    ``adagrad_bng`` takes its norm, blocks and exclude from ``transform``.
    """
    classes = optimizer_classes()
    name = str(optimizer.name).lower()
    if name not in classes:
        raise ValueError(f"Unknown optimizer.name {optimizer.name!r}; valid: {', '.join(sorted(classes))}.")
    cls = classes[name]
    accepted = _accepted_arguments(cls)
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
        kwargs.update(norm=transform.norm, blocks=transform.blocks, exclude=tuple(transform.exclude))
    return cls(**kwargs)
