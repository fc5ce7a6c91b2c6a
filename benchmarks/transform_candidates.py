"""Ways to run the block transform, side by side, against ``none`` (issue 12).

    python -m benchmarks.transform_candidates [--models many_blocks,deep_mlp,resnet20]
        [--rounds N] [--repeats N] [--smoke]

Candidates, all ``ng`` with layer blocks in TrainStep's guarded step:
``per_block`` (each block its own norm, scale and cond), ``vectorized`` (all
blocks at once: one segment-sum norm, vector scale work, one cond),
``default`` (vectorized from 16 blocks on: the shipped setting),
``xla_transform`` (the default transform compiled by XLA on its own, nested
in the step, as under MirroredStrategy with ``jit_compile=True``) and
``xla_step`` (the whole step compiled, one device only). Timed interleaved
like step_overhead (median per-round ratio to ``none``, its interquartile
range, CPU-time ratio). Last line: ``candidates <model>=<best>:<ratio> ...``.
"""

from __future__ import annotations

from collections.abc import Sequence

from benchmarks import cli, workloads
from benchmarks.timing import HEADER_CELLS, interleaved, ratio_rows

CANDIDATES = ("per_block", "vectorized", "default", "xla_transform", "xla_step")
ROUNDS = {"many_blocks": (40, 3), "deep_mlp": (30, 2), "resnet20": (20, 1)}


def _call(workload, candidate: str):
    if candidate == "none":
        return workloads.step_call(workload)
    step = workloads.train_step(workload, transform="ng")
    if candidate == "per_block":
        step.transform.transform.vectorize = False  # the ScaleBlocks driver
    elif candidate == "vectorized":
        step.transform.transform.vectorize_min_blocks = 1
    elif candidate == "xla_transform":
        step.transform_stage.compiled = True
    elif candidate == "xla_step":
        import tensorflow as tf

        step.jit_compile = True
        step.step = tf.function(step._one_step, jit_compile=True)
    batch = workload.tensors()
    return lambda: float(step.step(batch)[0])


def main(argv: Sequence[str] | None = None) -> dict:
    p = cli.parser(__doc__, rounds=0, repeats=0)
    p.add_argument("--models", default="many_blocks,deep_mlp,resnet20")
    p.add_argument("--candidates", default=",".join(CANDIDATES))
    args = cli.parse(p, argv)
    best = {}
    print(f"{'model':<12} {'candidate':<14} {'none ms':>9} {HEADER_CELLS}")
    for name in cli.names(args.models):
        workload = workloads.build(name, smoke=args.smoke)
        rounds, repeats = ROUNDS.get(name, (20, 1))
        calls = {"none": _call(workload, "none")}
        for candidate in cli.names(args.candidates):
            calls[candidate] = _call(workload, candidate)
        rows = ratio_rows(
            interleaved(calls, rounds=args.rounds or rounds, repeats=args.repeats or repeats),
            "none",
        )
        base = rows.pop("none")
        for candidate, row in rows.items():
            print(f"{name:<12} {candidate:<14} {base.ms:9.2f} {row.cells()}")
        winner = min(rows, key=lambda c: rows[c].ratio)
        best[name] = (
            winner,
            rows[winner].ratio,
            rows["default"].ratio if "default" in rows else None,
        )
    print(
        "candidates "
        + " ".join(
            f"{k}={w}:{r:.3f}" + (f",default:{d:.3f}" if d is not None else "")
            for k, (w, r, d) in best.items()
        )
    )
    return best


if __name__ == "__main__":
    main()
