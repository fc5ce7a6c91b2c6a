"""Every benchmark script still runs: ``--smoke`` (one round, tiny models) prints its table
and its summary line; plus the pure-Python helpers the figures depend on. No timing is
asserted: smoke numbers mean nothing."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `python -m pytest` from the root has it; plain `pytest` may not
    sys.path.insert(0, str(ROOT))

from benchmarks import (
    accelerator,
    backward_scaling_cost,
    clip_vs_keras,
    determinism_cost,
    loop_vs_fit,
    profile_step,
    step_overhead,
    sync_batch_norm_cost,
    timing,
    transform_bandwidth,
    transform_candidates,
    update_trust_ratio_cost,
    workloads,
    wrapper_vs_step,
)
from tf_bng import BlockTransform, TransformConfig

RATIO = r"\d+\.\d{3}"


def _last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


@pytest.mark.slow
def test_step_overhead_command_line_ends_with_the_headline():
    """The exact command the README and BUILD_NOTES quote, in a fresh process."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.step_overhead",
            "--smoke",
            "--transforms",
            "ng",
            "--blocks",
            "layer,global",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("load average")
    assert re.fullmatch(rf"overhead deep_mlp={RATIO} resnet20={RATIO}", lines[-1])
    assert any(re.match(r"resnet20\s+ng\s+global\s", line) for line in lines)


def test_step_overhead_lists_global_clip_once_whatever_the_blocks():
    pairs = step_overhead.candidates_for(["ng", "global_clip"], ["layer", "variable"])
    assert pairs == [("ng", "layer"), ("ng", "variable"), ("global_clip", "global")]


@pytest.mark.slow
@pytest.mark.parametrize(
    "module, argv, pattern",
    [
        (transform_bandwidth, [], rf"bandwidth ng_layer={RATIO} params=\d+\.\dM"),
        (loop_vs_fit, [], rf"loop_vs_fit deep_mlp: none={RATIO} ng={RATIO}"),
        (wrapper_vs_step, ["--models", "deep_mlp"], rf"wrapper_vs_step deep_mlp={RATIO}"),
        # The dense stand-in: the same four candidates, traced in a third of the conv + BN time.
        (clip_vs_keras, ["--models", "deep_mlp"], rf"clip_vs_keras deep_mlp={RATIO}"),
        (
            profile_step,
            [],
            r"profile resnet20 ng/layer: transform=\d+\.\d\dms/step \(\d+\.\d\d% of op time\)",
        ),
        (backward_scaling_cost, ["--models", "resnet20"], rf"backward_scaling resnet20={RATIO}"),
        (determinism_cost, ["--models", "deep_mlp"], rf"determinism deep_mlp={RATIO}"),
        (sync_batch_norm_cost, [], rf"sync_batch_norm deep_mlp={RATIO}"),
        (
            update_trust_ratio_cost,
            ["--models", "deep_mlp"],
            rf"update_trust_ratio deep_mlp={RATIO}",
        ),
        (
            transform_candidates,
            ["--models", "many_blocks", "--candidates", "per_block,default"],
            rf"candidates many_blocks=(per_block|default):{RATIO},default:{RATIO}",
        ),
    ],
    ids=lambda v: getattr(v, "__name__", "").rpartition(".")[2] or None,
)
def test_benchmark_prints_its_summary_line(module, argv, pattern, capsys):
    module.main(["--smoke", *argv])
    out = capsys.readouterr().out
    assert re.fullmatch(pattern, _last_line(out)), out


@pytest.mark.slow
def test_accelerator_says_it_is_reduced_and_ends_with_one_ratio_per_cell(capsys):
    """A slice of the smoke grid (all of it takes ~30 s on a loaded box): mirrored timing with
    the loss scale, and the XLA cell TrainStep refuses under MirroredStrategy today."""
    accelerator.main(["--smoke", "--devices", "all", "--precisions", "mixed_float16"])
    out = capsys.readouterr().out
    assert "REDUCED RUN" in out
    last = _last_line(out)
    assert last.startswith("accelerator reduced ng/none "), out
    cells = dict(item.split("=") for item in last.split()[3:])
    assert list(cells) == ["tiny_cnn/mirrored2/f16", "tiny_cnn/mirrored2/f16+xla"]
    assert all(re.fullmatch(rf"{RATIO}|n/a", value) for value in cells.values()), last


def test_accelerator_reports_an_impossible_cell_as_na_with_its_reason():
    cell = accelerator.Cell("tiny_cnn", "all", "float32", xla=True)
    row = accelerator.format_row(cell, accelerator.Result(replicas=2, reason="XLA fails"))
    assert row.endswith("n/a (XLA fails)")


def test_many_blocks_is_the_launch_bound_case():
    """201 layer blocks (100 x Dense + BatchNorm, and the logits) at batch 8."""
    workload = workloads.build("many_blocks")
    transform = BlockTransform(TransformConfig(transform="ng", blocks="layer"))
    assert len(transform.partition(workload.model.trainable_variables).names) == 201
    assert workload.batch_size == 8
    assert "many_blocks" in step_overhead.DEFAULT_ROUNDS


@pytest.mark.slow
def test_step_overhead_runs_many_blocks():
    headline = step_overhead.main(
        ["--smoke", "--models", "many_blocks", "--transforms", "ng", "--blocks", "layer"]
    )
    assert set(headline) == {"many_blocks"}


def test_profile_attributes_ops_to_the_part_of_the_step_they_come_from():
    def part(name):
        return profile_step.part_of(name, "cifar_resnet20", "sgd_1")

    assert part("block_transform/L2Loss_3") == "block_transform"
    assert part("gradient_tape/cifar_resnet20/conv/Conv2DBackpropFilter") == "backprop"
    assert part("cifar_resnet20/conv/Conv2D") == "forward"
    assert part("cond/then/_0/cond/sgd_1/Mul_4") == "optimizer"
    assert part("cond/then/_0/cond/sgd/Mul_4") == "other"  # another optimizer's op


@pytest.mark.parametrize("names", [list("AB"), list("ABCDE")])
def test_round_orders_shuffle_without_running_a_candidate_twice_in_a_row(names):
    orders = timing.round_orders(names, rounds=50)
    assert all(sorted(order) == names for order in orders)
    assert all(b[0] != a[-1] for a, b in zip(orders, orders[1:]))
    if len(names) > 2:  # every candidate also gets to run first
        assert {order[0] for order in orders} == set(names)
