"""Cost of op determinism (``runtime.deterministic=True``) on a train step.

    python -m benchmarks.determinism_cost [--models deep_mlp,resnet20] [--rounds N] [--smoke]

``tf.config.experimental.enable_op_determinism()`` is process-wide and cannot
be measured interleaved inside one process, so each round starts one child
process per setting (alternating which goes first), each times ``--steps``
compiled NG train steps after a warm-up and prints its median step time. The
figure is the median over rounds of the per-round ratio deterministic / default,
with its interquartile range and the CPU-time ratio (benchmarks/timing.py's rows).
Last line: ``determinism deep_mlp=<r> resnet20=<r>``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

from benchmarks import cli
from benchmarks.timing import HEADER_CELLS, Timings, ratio_rows

STEPS = {"deep_mlp": 60, "resnet20": 12}
SMOKE_STEPS = 3


def child(model: str, deterministic: bool, steps: int, smoke: bool) -> tuple[float, float]:
    """(median wall seconds, mean process CPU seconds) per NG step, in this fresh process."""
    import keras
    import tensorflow as tf

    from benchmarks import workloads

    keras.utils.set_random_seed(0)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    call = workloads.step_call(workloads.build(model, smoke=smoke), transform="ng")
    for _ in range(3):  # tracing and warm-up
        call()
    times = []
    cpu_started = time.process_time()
    for _ in range(steps):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times), (time.process_time() - cpu_started) / steps


def _run_child(model: str, deterministic: bool, steps: int, smoke: bool) -> tuple[float, float]:
    argv = [
        sys.executable,
        "-m",
        "benchmarks.determinism_cost",
        "--child",
        model,
        f"--deterministic={int(deterministic)}",
        f"--steps={steps}",
    ]
    out = subprocess.run(
        argv + (["--smoke"] if smoke else []),
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    wall, cpu = out.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def measure(model: str, *, rounds: int, steps: int, smoke: bool) -> Timings:
    """Per-round (wall, CPU) seconds per step of both settings, each round in fresh processes."""
    timings = Timings(
        wall={"default": [], "deterministic": []}, cpu={"default": [], "deterministic": []}
    )
    for r in range(rounds):
        for deterministic in (False, True) if r % 2 == 0 else (True, False):
            wall, cpu = _run_child(model, deterministic, steps, smoke)
            name = "deterministic" if deterministic else "default"
            timings.wall[name].append(wall)
            timings.cpu[name].append(cpu)
    return timings


def main(argv: Sequence[str] | None = None) -> dict:
    p = cli.parser(__doc__, rounds=4)
    p.add_argument("--models", default="deep_mlp,resnet20")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--deterministic", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--steps", type=int, default=0, help=argparse.SUPPRESS)
    if p.parse_args(argv).child:  # one measurement, in this fresh process
        args = p.parse_args(argv)
        print(*child(args.child, bool(args.deterministic), args.steps, args.smoke))
        return {}
    args = cli.parse(p, argv)
    print(f"{'model':<9} {'setting':<13} {HEADER_CELLS}")
    ratios = {}
    for model in cli.names(args.models):
        steps = SMOKE_STEPS if args.smoke else STEPS.get(model, 20)
        rows = ratio_rows(
            measure(model, rounds=args.rounds, steps=steps, smoke=args.smoke), "default"
        )
        for name, row in rows.items():
            print(f"{model:<9} {name:<13} {row.cells()}")
        ratios[model] = rows["deterministic"].ratio
    print("determinism " + " ".join(f"{m}={r:.3f}" for m, r in ratios.items()))
    return ratios


if __name__ == "__main__":
    main()
