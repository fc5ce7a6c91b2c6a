"""runtime.deterministic=True: a rerun of one config on one machine logs the same metrics."""

import pytest
from helpers import tiny_config

from tf_bng.training.metrics_log import read_records
from tf_bng_trainers.experiment import train_and_evaluate

TIMING = ("steps_per_second", "time", "wall_time", "seconds")


def _metrics(workdir: str) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in read_records(workdir)]


@pytest.mark.slow
def test_two_runs_of_one_config_log_identical_metrics(tmp_path):
    settings = {"runtime.deterministic": True, "train.steps": 8, "train.seed": 5}
    train_and_evaluate(tiny_config(**settings), str(tmp_path / "a"))
    train_and_evaluate(tiny_config(**settings), str(tmp_path / "b"))
    first, second = _metrics(str(tmp_path / "a")), _metrics(str(tmp_path / "b"))
    assert len(first) >= 4 and any(r.get("split") == "eval" for r in first)
    assert first == second  # floats compared exactly


@pytest.mark.slow
def test_another_seed_changes_the_metrics(tmp_path):
    """The comparison above can fail: a different seed gives different numbers."""
    base = {"runtime.deterministic": True, "train.steps": 8}
    train_and_evaluate(tiny_config(**base, **{"train.seed": 5}), str(tmp_path / "a"))
    train_and_evaluate(tiny_config(**base, **{"train.seed": 6}), str(tmp_path / "b"))
    assert _metrics(str(tmp_path / "a")) != _metrics(str(tmp_path / "b"))
