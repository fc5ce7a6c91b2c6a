"""The training program around :class:`tf_bng.TrainStep`: runtime, optimizers, loop.

``train_and_evaluate(config, workdir)`` is the entry point (see
:mod:`tf_bng.training.loop`). It is imported lazily: ``tf_bng.train_step``
imports :mod:`tf_bng.training.loss_scaling`, and the loop imports the train
step, so an eager import here would be circular.
"""

from __future__ import annotations

import importlib

__all__ = [
    "train_and_evaluate",
    "Trainer",
    "validate_config",
    "RunError",
    "ConfigError",
    "DataError",
    "TrainingDiverged",
    "CheckpointError",
    "TrainingInterrupted",
]

_ERRORS = "tf_bng.training.errors"
_LAZY = {
    "train_and_evaluate": "tf_bng.training.loop",
    "Trainer": "tf_bng.training.loop",
    "validate_config": "tf_bng.training.config_checks",
    "RunError": _ERRORS,
    "ConfigError": _ERRORS,
    "DataError": _ERRORS,
    "TrainingDiverged": _ERRORS,
    "CheckpointError": _ERRORS,
    "TrainingInterrupted": _ERRORS,
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tf_bng.training' has no attribute {name!r}")
