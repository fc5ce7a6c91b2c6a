"""Damaged or half-written checkpoints: warn, fall back to the previous one, never delete data."""

from __future__ import annotations

import glob
import logging
import os

import pytest
from helpers import tiny_config

from tf_bng.errors import CheckpointError
from tf_bng.training.metrics_log import read_records
from tf_bng_trainers.experiment import Experiment as Trainer


def _checkpoint_dir(workdir) -> str:
    return os.path.join(str(workdir), "checkpoints")


def _listed(workdir) -> list[str]:
    with open(os.path.join(_checkpoint_dir(workdir), "checkpoint")) as f:
        return [line.split('"')[1] for line in f if line.startswith("all_model")]


def _truncate(path: str) -> int:
    size = os.path.getsize(path) // 2
    with open(path, "r+b") as f:
        f.truncate(size)
    return size


def _first_run(workdir, **overrides) -> None:
    Trainer(tiny_config(**{"train.steps": 6, **overrides}), str(workdir)).run()


@pytest.mark.slow  # trains or spawns: 16 s (make test-fast skips it)
def test_damaged_latest_checkpoint_falls_back_and_keeps_the_files(tmp_path, caplog):
    _first_run(tmp_path, **{"train.keep_checkpoints": 2})
    assert _listed(tmp_path) == ["ckpt-4", "ckpt-6"]  # ckpt-2 pruned once 4 and 6 read back
    (data,) = glob.glob(os.path.join(_checkpoint_dir(tmp_path), "ckpt-6.data-*"))
    size = _truncate(data)

    resumed = Trainer(tiny_config(**{"train.steps": 8, "train.keep_checkpoints": 2}), str(tmp_path))
    with caplog.at_level(logging.WARNING):
        results = resumed.run()
    warnings = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    assert "ckpt-6 is damaged" in warnings and "Falling back to" in warnings
    assert results["step"] == 8
    damaged = os.path.join(_checkpoint_dir(tmp_path), "damaged")
    assert sorted(os.listdir(damaged)) == sorted(["ckpt-6.index", os.path.basename(data)])
    assert os.path.getsize(os.path.join(damaged, os.path.basename(data))) == size  # kept as is
    assert _listed(tmp_path) == ["ckpt-6", "ckpt-8"]  # 6 written again, then 8; 4 pruned last
    # Records of the steps trained again are not duplicated.
    assert [r["step"] for r in read_records(str(tmp_path), "train")] == [2, 4, 6, 8]


@pytest.mark.slow  # trains or spawns: 17 s (make test-fast skips it)
def test_leftovers_of_a_killed_write_are_ignored(tmp_path):
    _first_run(tmp_path)
    directory = _checkpoint_dir(tmp_path)
    # A write of step 8 killed half way: shards in the temp dir, a cut index, a cut state temp file.
    os.makedirs(os.path.join(directory, "ckpt-8_temp"))
    with open(
        os.path.join(directory, "ckpt-8_temp", "part-00000-of-00001.data-00000-of-00001"), "wb"
    ) as f:
        f.write(b"\x00" * 100)
    with open(os.path.join(directory, "ckpt-6.index"), "rb") as f:
        index = f.read()
    with open(os.path.join(directory, "ckpt-8.index"), "wb") as f:
        f.write(index[: len(index) // 2])
    with open(os.path.join(directory, "checkpoint.tmp"), "w") as f:
        f.write('model_checkpoint_path: "ckp')

    trainer = Trainer(tiny_config(**{"train.steps": 8}), str(tmp_path))
    assert trainer.checkpointer.restore_latest().endswith("ckpt-6")
    assert trainer.step == 6
    assert os.path.exists(os.path.join(directory, "damaged", "ckpt-8.index"))
    assert trainer.run()["step"] == 8
    assert _listed(tmp_path)[-1] == "ckpt-8"


def test_all_checkpoints_damaged_stops_without_moving_anything(tmp_path):
    _first_run(tmp_path)
    directory = _checkpoint_dir(tmp_path)
    for data in glob.glob(os.path.join(directory, "ckpt-*.data-*")):
        _truncate(data)
    before = sorted(os.listdir(directory))
    with pytest.raises(CheckpointError, match="No checkpoint in .* reads back intact"):
        Trainer(tiny_config(**{"train.steps": 8}), str(tmp_path)).run()
    assert sorted(os.listdir(directory)) == before
