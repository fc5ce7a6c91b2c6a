"""Very deep nets and float16: backward scaling's evidence over seeds (issue 13).

``python -m trainers.deep_nets [--out=docs/results] [--epochs=50] [--seeds=...] [--only=...]``

Trains the paper's sigmoid MLP on MNIST-5k with Adam+NG, with and without
``transform.backward_scaling``: float16 (``mixed_float16``) at depth 18 next
to float32, and float32 at depths 30 and 50 at three learning rates. Every run
is a ``trainers.train`` process in ``--workdir/<variant>/seed<N>`` (a
finished run is reused). Writes ``deep_nets.json``, ``deep_nets.md`` (a
table: final train loss median [min, max] over the seeds, the smallest
first-layer gradient norm logged, and whether it was ever exactly 0) and
``deep_nets.png`` (median curves with min-max bands) into ``--out``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import time

from absl import app, flags


def _define_flags() -> dict:
    """The program's flags, defined when it runs (importing this module defines none:
    the report and the tests import it next to trainers.train, which has --workdir too)."""
    return {
        "out": flags.DEFINE_string("out", "docs/results", "Where the table, JSON and plot go."),
        "workdir": flags.DEFINE_string("workdir", "runs/deep_nets", "Where the runs go."),
        "epochs": flags.DEFINE_float("epochs", 50.0, "Epochs per run (40 steps each)."),
        "seeds": flags.DEFINE_list(
            "seeds",
            None,
            "train.seed values for every variant (default: each variant's own: "
            "0-9 at depth 18, 0-2 at depths 30 and 50).",
        ),
        "only": flags.DEFINE_list("only", None, "Run only these variants (names)."),
    }


_FLAGS: dict = {}


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    label: str
    depth: int
    learning_rate: float = 1e-3
    float16: bool = False
    scaling: bool = False
    seeds: tuple[int, ...] = (0, 1, 2)

    def overrides(self) -> list[str]:
        flags_ = [
            f"--config.optimizer.learning_rate={self.learning_rate}",
            f"--config.transform.backward_scaling={str(self.scaling).lower()}",
        ]
        if self.float16:
            flags_.append("--config.runtime.mixed_precision=mixed_float16")
        return flags_


TEN = tuple(range(10))
_RATES = {1e-3: "1e-3", 3e-4: "3e-4", 1e-4: "1e-4"}


def _with_and_without_scaling(depth: int, learning_rate: float) -> tuple[Variant, Variant]:
    """A float32 depth/lr cell: plain backprop and backward scaling (named dD[_lrX][_bs])."""
    rate = _RATES[learning_rate]
    name = f"d{depth}" if learning_rate == 1e-3 else f"d{depth}_lr{rate}"
    label = f"depth {depth}, lr {rate}"
    return (
        Variant(name, label, depth, learning_rate=learning_rate),
        Variant(
            f"{name}_bs",
            f"{label}, backward scaling",
            depth,
            learning_rate=learning_rate,
            scaling=True,
        ),
    )


VARIANTS = (
    # The float16 claim (within 10 % of float32) compares two medians whose seed spread is
    # wider than 10 %: ten seeds each.
    Variant("d18_f32", "depth 18, float32", 18, seeds=TEN),
    Variant("d18_f16", "depth 18, float16", 18, float16=True, seeds=TEN),
    Variant(
        "d18_f16_bs",
        "depth 18, float16, backward scaling",
        18,
        float16=True,
        scaling=True,
        seeds=TEN,
    ),
    *(v for rate in _RATES for depth in (30, 50) for v in _with_and_without_scaling(depth, rate)),
)


def _records(run_dir: str) -> list[dict]:
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    out = []
    with open(path) as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return [r for r in out if r.get("split") == "train"]


def _train(variant: Variant, seed: int, run_dir: str, total_steps: int) -> None:
    records = _records(run_dir)
    if records and records[-1]["step"] >= total_steps:
        return
    command = [
        sys.executable,
        "-m",
        "trainers.train",
        f"--config=configs/mnist_mlp.py:depth={variant.depth},optimizer=adam,transform=ng",
        f"--config.train.seed={seed}",
        f"--config.train.steps={total_steps}",
        "--config.train.log_every=100",
        "--config.train.eval_every=1000",
        "--config.train.checkpoint_every=1000",
        *variant.overrides(),
        f"--workdir={run_dir}",
    ]
    started = time.time()
    result = subprocess.run(command, capture_output=True, text=True)
    print(
        f"{variant.name} seed {seed}: exit {result.returncode} in {time.time() - started:.0f} s",
        flush=True,
    )
    if result.returncode not in (0, 4):
        print(result.stderr[-2000:], file=sys.stderr)


def _first_layer(record: dict) -> tuple[float, bool]:
    """(log10 of the first layer's gradient norm, whether it was exactly 0) of one record."""
    log10 = record.get("grad_log10_norm") or {}
    norms = record.get("grad_norm") or {}
    name = next((k for k in norms if k.endswith("hidden1")), None)
    if name is None:
        return float("nan"), False
    if name in log10 and log10[name] is not None and math.isfinite(log10[name]):
        return float(log10[name]), False
    value = norms.get(name)
    if not value:
        return float("-inf"), True
    return math.log10(value), False


def summarize(variant: Variant, runs: dict[int, list[dict]]) -> dict:
    finals = [
        recs[-1]["loss"] for recs in runs.values() if recs and recs[-1].get("loss") is not None
    ]
    first = [(_first_layer(r)) for recs in runs.values() for r in recs]
    finite = [v for v, _ in first if math.isfinite(v)]
    return {
        "label": variant.label,
        "seeds": sorted(runs),
        "final_train_loss": finals,
        "median": _median(finals),
        "min": min(finals) if finals else None,
        "max": max(finals) if finals else None,
        "first_layer_log10_norm_min": min(finite) if finite else None,
        "first_layer_ever_zero": any(zero for _, zero in first),
        "records": len(first),
    }


def _median(values):
    values = sorted(values)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else 0.5 * (values[mid - 1] + values[mid])


def _fmt(x):
    return "–" if x is None else f"{x:.3f}"


def table(summary: dict) -> str:
    lines = [
        "| variant | seeds | final train loss: median [min, max] | smallest first-layer "
        "grad norm logged | first layer ever 0 |",
        "|---|---|---|---|---|",
    ]
    for s in summary.values():
        low = s["first_layer_log10_norm_min"]
        lines.append(
            f"| {s['label']} | {len(s.get('seeds', ()))} | "
            f"{_fmt(s['median'])} [{_fmt(s['min'])}, {_fmt(s['max'])}] | "
            f"{'–' if low is None else f'1e{low:.0f}'} | "
            f"{'**yes**' if s['first_layer_ever_zero'] else 'no'} |"
        )
    return "\n".join(lines)


_LOSS_PANELS = (
    ("depth 18, lr 1e-3", ("d18_f32", "d18_f16", "d18_f16_bs")),
    *(
        (
            f"depth {depth}, lr {_RATES[rate]}",
            tuple(v.name for v in _with_and_without_scaling(depth, rate)),
        )
        for depth in (30, 50)
        for rate in _RATES
    ),
)


def _band(ax, runs: dict, values, label: str, style: str, marker: str = "") -> None:
    """Median over seeds with a min-max band; ``values(record)`` gives one point."""
    import numpy as np

    series = [np.array([values(r) for r in recs], dtype=float) for recs in runs.values() if recs]
    if not series:
        return
    n = min(len(s) for s in series)
    stack = np.stack([s[:n] for s in series])
    steps = [r["step"] for r in next(recs for recs in runs.values() if recs)][:n]
    (line,) = ax.plot(
        steps, np.median(stack, axis=0), label=label, linestyle=style, marker=marker, markersize=3
    )
    ax.fill_between(steps, stack.min(axis=0), stack.max(axis=0), alpha=0.15, color=line.get_color())


def _finite_first_layer(record: dict) -> float:
    """The first layer's log10 gradient norm; NaN (a gap in the line) where it is exactly 0."""
    value = _first_layer(record)[0]
    return value if math.isfinite(value) else float("nan")


def plot(curves: dict, path: str) -> None:
    """Train-loss panels per depth and learning rate, and the first layer's gradient norm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 3, figsize=(15, 11))
    cells = [axes[0, 0], *axes[1], *axes[2]]
    for ax, (title, names) in zip(cells, _LOSS_PANELS):
        for name in names:
            if name in curves:
                _band(
                    ax,
                    curves[name],
                    lambda r: r["loss"],
                    name,
                    "-" if name.endswith("_bs") else "--",
                )
        ax.set_title(f"{title}: train loss (Adam+NG)", fontsize=10)
        ax.set_ylim(0, 2.5)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    ax = axes[0, 1]
    for name in ("d18_f16", "d18_f16_bs", "d30", "d30_bs", "d50", "d50_bs"):
        if name in curves:
            plain = not name.endswith("_bs")
            _band(
                ax,
                curves[name],
                _finite_first_layer,
                name,
                "--" if plain else "-",
                marker="o" if plain else "",
            )
    ax.set_title("first layer: log10 gradient norm (missing = exactly 0)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    axes[0, 2].axis("off")
    axes[0, 2].text(
        0.0,
        0.5,
        "median over seeds, band = min..max\n"
        "dashed: plain backprop\nsolid: backward scaling (_bs)\n"
        "d18_f16: mixed_float16",
        fontsize=10,
        va="center",
    )
    for ax in axes[2]:
        ax.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv) -> None:
    del argv
    out, workdir, epochs, seeds, only = (
        _FLAGS[name].value for name in ("out", "workdir", "epochs", "seeds", "only")
    )
    total_steps = int(round(epochs * 40))
    variants = [v for v in VARIANTS if not only or v.name in only]
    curves, summary = {}, {}
    started = time.time()
    for variant in variants:
        runs = {}
        for seed in [int(s) for s in seeds] if seeds else variant.seeds:
            run_dir = os.path.join(workdir, variant.name, f"seed{seed}")
            _train(variant, seed, run_dir, total_steps)
            runs[seed] = _records(run_dir)
        curves[variant.name] = runs
        summary[variant.name] = summarize(variant, runs)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "deep_nets.json"), "w") as f:
        json.dump({"epochs": epochs, "variants": summary}, f, indent=2)
    text = table(summary)
    with open(os.path.join(out, "deep_nets.md"), "w") as f:
        f.write(
            f"Adam+NG on MNIST-5k, {epochs:g} epochs, seeds in the table; "
            f"`python -m trainers.deep_nets --epochs={epochs:g}`\n\n{text}\n"
        )
    plot(curves, os.path.join(out, "deep_nets.png"))
    print(text)
    print(f"\n{(time.time() - started) / 60:.1f} min")


if __name__ == "__main__":
    _FLAGS.update(_define_flags())
    app.run(main)
