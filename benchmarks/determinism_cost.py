"""Cost of op determinism (``runtime.deterministic=True``) on a train step.

    python -m benchmarks.determinism_cost [--models deep_mlp,resnet20] [--rounds N] [--smoke]

``tf.config.experimental.enable_op_determinism()`` is process-wide and cannot
be measured interleaved inside one process, so each round starts one child
process per setting (alternating which goes first), each times ``--steps``
compiled NG train steps after a warm-up and prints its median step time. The
figure is the median over rounds of the per-round ratio deterministic / default,
and the spread of those ratios. Last line: ``determinism deep_mlp=<r> resnet20=<r>``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

from benchmarks import cli

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


def main(argv: Sequence[str] | None = None) -> dict:
    p = cli.parser(__doc__, rounds=4)
    p.add_argument("--models", default="deep_mlp,resnet20")
    p.add_argument("--child", default=None, help=argparse_suppress())
    p.add_argument("--deterministic", type=int, default=0, help=argparse_suppress())
    p.add_argument("--steps", type=int, default=0, help=argparse_suppress())
    if "--child" in (argv if argv is not None else sys.argv[1:]):
        args = p.parse_args(argv)
        print(*child(args.child, bool(args.deterministic), args.steps, args.smoke))
        return {}
    args = cli.parse(p, argv)
    print(
        f"{'model':<9} {'default ms':>10} {'determ. ms':>10} {'ratio':>7} {'ratio IQR':>15} "
        f"{'CPU ratio':>9}"
    )
    ratios = {}
    for model in cli.names(args.models):
        steps = SMOKE_STEPS if args.smoke else STEPS.get(model, 20)
        base, determ = [], []
        for r in range(args.rounds):
            order = (False, True) if r % 2 == 0 else (True, False)
            for deterministic in order:
                value = _run_child(model, deterministic, steps, args.smoke)
                (determ if deterministic else base).append(value)
        per_round = [d[0] / b[0] for d, b in zip(determ, base)]
        cpu_ratio = statistics.median(d[1] / b[1] for d, b in zip(determ, base))
        q = statistics.quantiles(per_round, n=4) if len(per_round) > 1 else per_round * 3
        ratios[model] = statistics.median(per_round)
        print(
            f"{model:<9} {1e3 * statistics.median(b[0] for b in base):>10.2f} "
            f"{1e3 * statistics.median(d[0] for d in determ):>10.2f} {ratios[model]:>7.3f} "
            f"{q[0]:>7.3f}-{q[-1]:<7.3f} {cpu_ratio:>9.3f}"
        )
    print("determinism " + " ".join(f"{m}={r:.3f}" for m, r in ratios.items()))
    return ratios


def argparse_suppress() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
