"""The configs shipped with tf_bng (``configs/`` in the source tree, ``tf_bng_configs`` installed).

``--config=mnist_mlp:depth=18`` names one of them; a path to a file
(``--config=configs/mnist_mlp.py:depth=18`` or your own file) is used as
given. A path that exists always wins over a shipped name.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from typing import Any

__all__ = [
    "CONFIGS_PACKAGE",
    "shipped_config_names",
    "shipped_config_path",
    "load_config",
    "resolve_config_argv",
    "UnknownConfigError",
]

CONFIGS_PACKAGE = "tf_bng_configs"


def _directory() -> str:
    return os.path.dirname(importlib.import_module(CONFIGS_PACKAGE).__file__)


def shipped_config_names() -> tuple[str, ...]:
    return tuple(
        sorted(
            f[:-3]
            for f in os.listdir(_directory())
            if f.endswith(".py") and not f.startswith("_") and f != "base.py"
        )
    )


def shipped_config_path(name: str) -> str | None:
    """The file of the shipped config ``name``, or None when there is none."""
    return os.path.join(_directory(), f"{name}.py") if name in shipped_config_names() else None


def load_config(name: str, arg: str | None = None) -> Any:
    """``get_config(arg)`` of the shipped config ``name`` (what the report and demo use)."""
    if name not in shipped_config_names():
        raise ValueError(
            f"Unknown config {name!r}; shipped configs: {', '.join(shipped_config_names())}."
        )
    return importlib.import_module(f"{CONFIGS_PACKAGE}.{name}").get_config(arg)


class UnknownConfigError(ValueError):
    """``--config`` names no file and no shipped config (exit code 2, as a bad config).

    Not a :class:`tf_bng.errors.ConfigError`: importing ``tf_bng`` imports
    TensorFlow, and this error must come before that, in a second.
    """

    exit_code = 2


def _resolve(value: str) -> str:
    path, sep, arg = value.partition(":")
    if os.path.exists(path):
        return value
    shipped = shipped_config_path(path)
    if shipped:
        return shipped + sep + arg
    raise UnknownConfigError(
        f"--config={path}: no such config file and no shipped config of that name; shipped "
        f"configs: {', '.join(shipped_config_names())} (or pass the path of a config file)."
    )


def resolve_config_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` with ``--config=<shipped name>[:arg]`` replaced by the shipped file's path.

    Raises :class:`UnknownConfigError` (exit code 2) when the value is
    neither an existing file nor a shipped name.
    """
    out = list(argv)
    for i, item in enumerate(out):
        if item.startswith("--config="):
            out[i] = "--config=" + _resolve(item[len("--config=") :])
        elif item == "--config" and i + 1 < len(out):
            out[i + 1] = _resolve(out[i + 1])
    return out
