"""Checkpoint faults (issue 19): disk full during a save, orphans left by a kill.

Disk full is produced for real on a small tmpfs when this process may mount
one (root); elsewhere the save raises the same ``ResourceExhaustedError``
from a monkeypatched ``tf.train.Checkpoint.write``. An orphan is what a kill
between a checkpoint's write and the state-file update leaves: the files of
``ckpt-N`` on disk, the state file not naming it.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess

import pytest
import tensorflow as tf
from helpers import tiny_config

from tf_bng.errors import CheckpointError
from tf_bng.training.checkpointing import Checkpointer
from tf_bng_trainers.experiment import Experiment as Trainer


def _checkpoints(workdir) -> list[int]:
    names = glob.glob(os.path.join(str(workdir), "checkpoints", "ckpt-*.index"))
    return sorted(int(os.path.basename(n)[5:-6]) for n in names)


def _listed(workdir) -> list[str]:
    with open(os.path.join(str(workdir), "checkpoints", "checkpoint")) as f:
        return [line.split('"')[1] for line in f if line.startswith("all_model")]


def _fill(directory: str) -> None:
    """Write a ballast file until the file system is full."""
    with open(os.path.join(directory, "ballast"), "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
        try:
            while True:  # the last few bytes
                f.write(b"\0")
                f.flush()
        except OSError:
            pass


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MB tmpfs at ``tmp_path/disk`` (root), else a plain directory and None."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = (
        os.geteuid() == 0
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount_point)],
            capture_output=True,
        ).returncode
        == 0
    )
    try:
        yield str(mount_point), mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_disk_full_during_a_save_is_one_checkpoint_error_and_leaves_no_partial_files(
    small_disk, monkeypatch
):
    disk, mounted = small_disk
    workdir = os.path.join(disk, "run")
    trainer = Trainer(tiny_config(**{"train.steps": 4, "train.checkpoint_every": 2}), workdir)
    real_write = tf.train.Checkpoint.write

    def write(self, prefix, *args, **kwargs):
        if prefix.endswith("ckpt-4"):
            if mounted:
                _fill(disk)  # the next write hits a real ENOSPC
            else:
                os.makedirs(prefix + "_temp")  # what a failing SaveV2 leaves
                raise tf.errors.ResourceExhaustedError(None, None, "No space left on device")
        return real_write(self, prefix, *args, **kwargs)

    monkeypatch.setattr(tf.train.Checkpoint, "write", write)
    with pytest.raises(CheckpointError) as error:
        trainer.run()
    message = str(error.value)
    assert error.value.exit_code == 5 and "\n" not in message
    assert "saving the checkpoint of step 4" in message and "the disk is full" in message
    assert message.endswith("ckpt-2. Free some space, then rerun the same command to resume.")
    directory = os.path.join(workdir, "checkpoints")
    leftovers = [n for n in os.listdir(directory) if n.startswith("ckpt-4")]
    assert leftovers == [], leftovers  # ckpt-4_temp/ and any partial ckpt-4.* removed
    assert _checkpoints(workdir) == [2] and _listed(workdir) == ["ckpt-2"]
    assert trainer.checkpointer.latest().endswith("ckpt-2")

    # Space freed, the same run resumes from ckpt-2.
    if mounted:
        os.remove(os.path.join(disk, "ballast"))
    monkeypatch.setattr(tf.train.Checkpoint, "write", real_write)
    resumed = Trainer(tiny_config(**{"train.steps": 4, "train.checkpoint_every": 2}), workdir)
    assert resumed.checkpointer.restore_latest().endswith("ckpt-2")


def _write_only_save(self, step):
    """What a save killed right after writing leaves: the files, no state-file update."""
    prefix = os.path.join(self.directory, f"ckpt-{int(step)}")
    self.checkpoint.write(prefix)
    return prefix


@pytest.fixture(scope="module")
def orphans(tmp_path_factory):
    """A workdir with ckpt-2, 4, 6 listed and ckpt-8 ... 14 orphaned (7 on disk, keep 3)."""
    workdir = tmp_path_factory.mktemp("orphans")
    settings = {"train.checkpoint_every": 2, "train.keep_checkpoints": 3}
    Trainer(tiny_config(**{"train.steps": 6, **settings}), str(workdir)).run()
    assert _checkpoints(workdir) == [2, 4, 6]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Checkpointer, "save", _write_only_save)
        Trainer(tiny_config(**{"train.steps": 14, **settings}), str(workdir)).run()
    assert _checkpoints(workdir) == [2, 4, 6, 8, 10, 12, 14]
    assert _listed(workdir) == ["ckpt-2", "ckpt-4", "ckpt-6"]
    return str(workdir)


def _copy(orphans: str, tmp_path) -> str:
    workdir = str(tmp_path / "run")
    shutil.copytree(orphans, workdir)
    return workdir


@pytest.mark.slow
def test_orphaned_checkpoints_are_pruned_on_the_next_start(orphans, tmp_path):
    tmp_path = _copy(orphans, tmp_path)
    trainer = Trainer(
        tiny_config(**{"train.steps": 16, "train.keep_checkpoints": 3}), str(tmp_path)
    )
    assert trainer.checkpointer.restore_latest().endswith("ckpt-14")
    assert trainer.step == 14
    assert _checkpoints(tmp_path) == [10, 12, 14]
    assert _listed(tmp_path) == ["ckpt-10", "ckpt-12", "ckpt-14"]
    assert trainer.checkpointer.latest().endswith("ckpt-14")


@pytest.mark.slow
def test_pruning_orphans_never_deletes_the_newest_good_one(orphans, tmp_path):
    tmp_path = _copy(orphans, tmp_path)
    (data,) = glob.glob(os.path.join(str(tmp_path), "checkpoints", "ckpt-14.data-*"))
    with open(data, "r+b") as f:
        f.truncate(os.path.getsize(data) // 2)  # the newest orphan is damaged
    trainer = Trainer(
        tiny_config(**{"train.steps": 16, "train.keep_checkpoints": 3}), str(tmp_path)
    )
    assert trainer.checkpointer.restore_latest().endswith("ckpt-12")
    assert _checkpoints(tmp_path) == [8, 10, 12]  # 14 moved to damaged/, 12 kept and named
    assert _listed(tmp_path) == ["ckpt-8", "ckpt-10", "ckpt-12"]
    assert os.path.exists(os.path.join(str(tmp_path), "checkpoints", "damaged", "ckpt-14.index"))
    assert trainer.run()["step"] == 16
    assert _listed(tmp_path) == ["ckpt-12", "ckpt-14", "ckpt-16"]
