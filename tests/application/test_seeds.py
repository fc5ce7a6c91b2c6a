"""Claims over seeds (issue 9 item 4): median/min/max summaries and the ``trainers.seeds`` binary.

The statistics are checked on hand-made values; one end-to-end run trains a
tiny MLP for two seeds as two real ``trainers.train`` processes and checks
the table and summary.json against the runs' own metrics.jsonl.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from tf_bng_trainers.reporting.seeds import band, final_metrics, format_summary, spread, summarize

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAN = math.nan


def test_spread_is_median_min_max_of_the_finite_values():
    s = spread([0.5, 0.9, None, 0.4, NAN, 0.6])
    assert (s.median, s.min, s.max, s.missing) == (0.55, 0.4, 0.9, 2)
    assert s.format() == "0.55 [0.4–0.9] (2 not finite)"
    assert s.count(lambda v: v < 1.0) == 4
    assert not s.all(lambda v: v < 1.0)  # a diverged seed never satisfies a claim
    assert spread([0.3, 0.2]).all(lambda v: v < 1.0)
    assert spread([0.25]).format() == "0.25"
    assert math.isnan(spread([None]).median) and spread([]).format() == "n/a"
    assert spread([1.0, 2.0, 4.0]).as_dict() == {
        "median": 2.0,
        "min": 1.0,
        "max": 4.0,
        "values": [1.0, 2.0, 4.0],
        "not_finite": 0,
    }


def test_summarize_aligns_metrics_by_seed():
    summary = summarize({2: {"loss": 3.0}, 0: {"loss": 1.0, "accuracy": 0.5}, 1: {"loss": 2.0}})
    assert list(summary) == ["accuracy", "loss"]
    assert summary["loss"].values == (1.0, 2.0, 3.0)  # seeds in order 0, 1, 2
    assert summary["accuracy"].missing == 2
    text = format_summary(summary, [0, 1, 2])
    assert text.splitlines()[2].split() == ["accuracy", "0.5", "0.5", "0.5", "0.5", "n/a", "n/a"]
    assert text.splitlines()[3].split() == ["loss", "2", "1", "3", "1", "2", "3"]


def test_final_metrics_come_from_the_last_records_of_each_split():
    records = [
        {
            "split": "train",
            "step": 40,
            "epoch": 1.0,
            "loss": 2.3,
            "accuracy": 0.1,
            "grad_norm": {"a": 1},
        },
        {"split": "eval", "step": 40, "epoch": 1.0, "loss": 2.2, "accuracy": 0.12},
        {
            "split": "train",
            "step": 80,
            "epoch": 2.0,
            "loss": 1.5,
            "accuracy": 0.4,
            "grad_norm": {"a": 1},
        },
        {"split": "eval", "step": 80, "epoch": 2.0, "loss": 1.6, "accuracy": 0.38},
    ]
    assert final_metrics(records) == {
        "train_loss": 1.5,
        "train_accuracy": 0.4,
        "eval_loss": 1.6,
        "eval_accuracy": 0.38,
        "step": 80,
    }
    assert final_metrics([]) == {}


def test_band_is_taken_where_every_seed_logged():
    x, median, low, high = band(
        [
            (np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0])),
            (np.array([1.0, 2.0, 3.0]), np.array([1.0, NAN, 0.5])),
            (np.array([1.0, 2.0]), np.array([2.0, 4.0])),  # stopped after epoch 2
        ]
    )
    np.testing.assert_array_equal(x, [1.0, 2.0])
    np.testing.assert_array_equal(median, [2.0, 3.0])  # NaN left out of epoch 2's median
    np.testing.assert_array_equal(low, [1.0, 2.0])
    np.testing.assert_array_equal(high, [3.0, 4.0])
    assert band([])[0].size == 0


def test_seed_commands_and_seed_lists():
    from tf_bng_trainers import seeds

    assert seeds.parse_seeds(["3", "1"], None) == [3, 1]
    assert seeds.parse_seeds(None, 3) == [0, 1, 2]
    for bad in ((None, None), (["1"], 2), (["a"], None), (["1", "1"], None), (None, 0)):
        with pytest.raises(ValueError):
            seeds.parse_seeds(*bad)
    command = seeds.seed_command(
        "configs/x.py:depth=2", {"train.epochs": 3.0, "export": True}, 4, "/r"
    )
    assert command[1:] == [
        "-m",
        "tf_bng_trainers.train",
        "--config=configs/x.py:depth=2",
        "--config.runtime.deterministic=true",  # on by default: reruns are identical
        "--config.train.epochs=3.0",
        "--config.export=true",
        "--config.train.seed=4",
        "--workdir=/r/seed4",
    ]
    opted_out = seeds.seed_command("c.py", {"runtime.deterministic": False}, 0, "/r")
    assert "--config.runtime.deterministic=false" in opted_out
    assert "--config.runtime.deterministic=true" not in opted_out
    with pytest.raises(ValueError, match="train.seed"):
        seeds.seed_command("c.py", {"train.seed": 1}, 0, "/r")


def _run_seeds(*flags: str, cwd: str = REPO) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", NO_GCE_CHECK="true")
    return subprocess.run(
        [sys.executable, "-m", "trainers.seeds", *flags],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_binary_trains_each_seed_and_summarizes_them(tmp_path):
    from tf_bng.training.metrics_log import read_records

    root = str(tmp_path / "runs")
    result = _run_seeds(
        "--config=configs/mnist_mlp.py:depth=1,optimizer=adam,transform=ng",
        f"--workdir={root}",
        "--config.data.limit=60",
        "--config.data.batch_size=20",
        "--config.model.width=4",
        "--config.train.steps=3",
        "--seeds=0,5",
        "--jobs=2",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    with open(os.path.join(root, "summary.json")) as f:
        summary = json.load(f)
    assert summary["seeds"] == [0, 5] and summary["exit_codes"] == {"0": 0, "5": 0}
    losses = [
        final_metrics(read_records(os.path.join(root, f"seed{s}")))["train_loss"] for s in (0, 5)
    ]
    assert losses[0] != losses[1]  # two different seeds, two different runs
    assert summary["summary"]["train_loss"]["values"] == losses
    assert summary["summary"]["train_loss"]["median"] == pytest.approx(np.median(losses))
    assert "train_steps_per_second" not in summary["summary"]  # bookkeeping, not an outcome
    configs = [json.load(open(os.path.join(root, f"seed{s}", "config.json"))) for s in (0, 5)]
    assert [c["train"]["seed"] for c in configs] == [0, 5]
    assert all(c["data"]["limit"] == 60 and c["model"]["width"] == 4 for c in configs)
    row = next(line for line in result.stdout.splitlines() if line.startswith("train_loss "))
    assert row.split()[1:4] == [f"{v:.5g}" for v in (np.median(losses), min(losses), max(losses))]


@pytest.mark.slow
def test_binary_rejects_a_bad_config_once_before_training(tmp_path):
    result = _run_seeds(
        "--config=configs/quadratic.py",
        f"--workdir={tmp_path}",
        "--config.transform.name=foo",
        "--num_seeds=3",
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: transform.name: Unknown transform 'foo'. Valid choices: 'none', 'ng', "
        "'ng_adap', 'clip', 'global_clip'."
    ]
    assert not os.path.exists(tmp_path / "seed0")
