"""``trainers.deep_nets``: its table and plot read the runs' metrics as logged (no training)."""

from __future__ import annotations

import json
import math

from tf_bng_trainers import deep_nets


def write_run(directory, losses, first_layer):
    """A run's metrics.jsonl: ``first_layer`` items are (norm, log10 or None)."""
    directory.mkdir(parents=True)
    with open(directory / "metrics.jsonl", "w") as f:
        for step, (loss, (norm, log10)) in enumerate(zip(losses, first_layer), start=1):
            record = {
                "split": "train",
                "step": 100 * step,
                "loss": loss,
                "grad_norm": {"dense/hidden1": norm, "dense/hidden2": 1.0},
            }
            if log10 is not None:
                record["grad_log10_norm"] = {"dense/hidden1": log10, "dense/hidden2": 0.0}
            f.write(json.dumps(record) + "\n")


def test_summary_reports_median_spread_and_whether_the_first_layer_was_zero(tmp_path):
    plain = deep_nets.Variant("d30", "depth 30", 30)
    scaled = deep_nets.Variant("d30_bs", "depth 30, backward scaling", 30, scaling=True)
    runs = {}
    for variant, first in (
        (plain, [(1e-20, None), (0.0, None)]),
        (scaled, [(0.0, -60.0), (0.0, -95.5)]),
    ):
        runs[variant.name] = {}
        for seed, final in enumerate((2.0, 1.5, 1.9)):
            path = tmp_path / variant.name / f"seed{seed}"
            write_run(path, [2.3, final], first)
            runs[variant.name][seed] = deep_nets._records(str(path))
    plain_summary = deep_nets.summarize(plain, runs["d30"])
    scaled_summary = deep_nets.summarize(scaled, runs["d30_bs"])
    assert plain_summary["median"] == 1.9 and plain_summary["min"] == 1.5
    assert plain_summary["max"] == 2.0
    assert plain_summary["first_layer_ever_zero"] is True
    assert math.isclose(plain_summary["first_layer_log10_norm_min"], -20.0)
    # with scaling the float32 norm underflows but its log10 is logged: never "zero"
    assert scaled_summary["first_layer_ever_zero"] is False
    assert scaled_summary["first_layer_log10_norm_min"] == -95.5
    text = deep_nets.table({"d30": plain_summary, "d30_bs": scaled_summary})
    assert "| depth 30 | 3 | 1.900 [1.500, 2.000] | 1e-20 | **yes** |" in text
    assert "| depth 30, backward scaling | 3 | 1.900 [1.500, 2.000] | 1e-96 | no |" in text
    deep_nets.plot(runs, str(tmp_path / "deep_nets.png"))
    assert (tmp_path / "deep_nets.png").stat().st_size > 10_000


def test_every_variant_has_a_plot_panel_and_a_unique_name():
    names = [v.name for v in deep_nets.VARIANTS]
    assert len(names) == len(set(names))
    plotted = {name for _, group in deep_nets._LOSS_PANELS for name in group}
    assert plotted == set(names)
    rates = {v.learning_rate for v in deep_nets.VARIANTS if v.depth in (30, 50)}
    assert rates == {1e-3, 3e-4, 1e-4}
