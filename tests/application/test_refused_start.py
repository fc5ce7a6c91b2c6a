"""Issue 22 item 4: a refused start leaves the work directory's config.json as it was."""

import os

import pytest
from helpers import tiny_config

from tf_bng.errors import CheckpointError
from tf_bng_trainers.experiment import train_and_evaluate


def _config_bytes(workdir) -> bytes:
    with open(os.path.join(workdir, "config.json"), "rb") as f:
        return f.read()


@pytest.mark.slow
def test_a_refused_resume_keeps_the_runs_config(tmp_path):
    train_and_evaluate(tiny_config(), str(tmp_path))
    before = _config_bytes(tmp_path)
    # Another model into the same workdir: its checkpoint cannot be restored.
    with pytest.raises(CheckpointError):
        train_and_evaluate(tiny_config(**{"model.width": 8}), str(tmp_path))
    assert _config_bytes(tmp_path) == before
    # An accepted resume with a changed key does record it (the write happens, just later).
    train_and_evaluate(tiny_config(**{"train.steps": 8}), str(tmp_path))
    assert b'"steps": 8' in _config_bytes(tmp_path)
