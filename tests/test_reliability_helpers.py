"""Shared pieces of the reliability tests (no tests here).

A tiny deep_mlp (Dense + BatchNorm + dropout, Adam) on the offline
``digits`` set, in-memory stand-ins for a dataset (to plant NaN, bad labels
or wrong shapes), and the binary's command line and environment for
subprocess runs.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from typing import Optional

import numpy as np

from tf_bng_configs import deep_mlp
from tf_bng.data import registry
from tf_bng.data.source import array_source
from tf_bng.data.spec import DatasetSpec

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_ARG = "depth=2,optimizer=adam,transform=ng,dataset=digits"
TINY_SETTINGS = {
    "data.limit": 200,
    "data.batch_size": 20,
    "model.width": 16,
    "train.steps": 6,
    "train.steps_per_loop": 2,
    "train.log_every": 2,
    "train.eval_every": 6,
    "train.checkpoint_every": 2,
}


def tiny_config(**overrides):
    """deep_mlp shrunk to seconds: 2 layers of 16 units with BatchNorm and dropout, digits."""
    config = deep_mlp.get_config(TINY_ARG)
    config.update_from_flattened_dict(dict(TINY_SETTINGS, **overrides))
    return config


def random_digits(count: int, *, features: int = 64, seed: int = 0):
    """Finite inputs in [0, 1) and labels in [0, 10): a well-formed stand-in for digits."""
    rng = np.random.default_rng(seed)
    return rng.random((count, features), np.float32), rng.integers(0, 10, count).astype(np.int32)


def install_digits(monkeypatch, train, test, *, input_shape=(64,), num_classes: int = 10) -> None:
    """Serve ``train`` / ``test`` ``(x, y)`` arrays as the ``digits`` dataset for this test."""

    def spec(config) -> DatasetSpec:
        return DatasetSpec(
            name="digits", task="classification", input_shape=input_shape,
            num_classes=num_classes, train_examples=len(train[0]), eval_examples=len(test[0]),
        )

    def arrays(config, split):
        return train if split == "train" else test

    source = array_source(spec=spec, arrays=arrays)
    monkeypatch.setitem(registry._SOURCES, "digits", source)


def binary_command(workdir: str, settings: dict, arg: str = TINY_ARG,
                   config_file: str = "deep_mlp") -> list[str]:
    flags = [f"--config={REPO}/configs/{config_file}.py:{arg}", f"--workdir={workdir}"]
    flags += [f"--config.{key}={value}" for key, value in settings.items()]
    return [sys.executable, "-m", "trainers.train", *flags]


def binary_env(home: Optional[str] = None, tmp: Optional[str] = None) -> dict:
    """The test's environment minus anything that would steer the run's caches elsewhere."""
    env = {k: v for k, v in os.environ.items() if k not in ("MPLCONFIGDIR", "KERAS_HOME")}
    env.update(PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", NO_GCE_CHECK="true")
    if home is not None:
        env["HOME"] = home
    if tmp is not None:
        env.update(TMPDIR=tmp, TEMP=tmp, TMP=tmp)
    return env


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@contextlib.contextmanager
def preserved_environ():
    """Undo an in-process binary run's changes: it points caches and temp files at its workdir."""
    saved, saved_tempdir = dict(os.environ), tempfile.tempdir
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        tempfile.tempdir = saved_tempdir
