"""``clip`` with variable blocks against Keras's own ``clipnorm``, same base optimizer.

    python -m benchmarks.clip_vs_keras [--models deep_mlp,resnet20] [--threshold 0.1]
        [--rounds N] [--smoke]

Both clip every variable's gradient to l2 norm <= threshold, then SGD momentum
0.9 steps. Compared in two harnesses: TrainStep (``transform="clip",
blocks="variable"`` vs ``transform="none"`` with ``SGD(clipnorm=...)``) and a
plain tape step (``ClippedOptimizer(SGD, blocks="variable")`` vs
``SGD(clipnorm=...)``). Keras's ``_clip_by_norm`` computes ``g * c /
max(||g||, c)`` per tensor: Square, Sum and two full-size passes (multiply,
divide) besides its scalar ops; ours is one fused L2Loss read plus one
multiply. TrainStep's default guard checks the gradient's finiteness before
and after the transform; with ``none`` both checks see the same tensors and
grappler merges them (one IsFinite per tensor in the profile, two with
``clip``), so the TrainStep rows charge ``clip`` one more pass per tensor that
the tape rows (no guard) do not. Last line:
``clip_vs_keras deep_mlp=<r> resnet20=<r>`` (TrainStep clip time / TrainStep
clipnorm time; target <= 1.0).
"""

from __future__ import annotations

from collections.abc import Sequence

from benchmarks import cli, workloads
from benchmarks.timing import HEADER_CELLS, median_ratio
from tf_bng import ClippedOptimizer

DEFAULT_ROUNDS = {"deep_mlp": (60, 2), "resnet20": (25, 1)}
OURS, KERAS = "TrainStep clip/variable", "TrainStep SGD(clipnorm)"
TAPE_OURS, TAPE_KERAS = "tape + ClippedOptimizer/variable", "tape + SGD(clipnorm)"


def main(argv: Sequence[str] | None = None) -> dict:
    p = cli.parser(__doc__, rounds=0, repeats=0)
    p.add_argument("--models", default="deep_mlp,resnet20")
    p.add_argument("--threshold", type=float, default=0.1, help="the paper's best c = 0.1")
    args = cli.parse(p, argv)
    c = args.threshold

    print(f"{'model':<9} {'candidate':<34} {HEADER_CELLS}")
    summary = {}
    for name in cli.names(args.models):
        workload = workloads.build(name, smoke=args.smoke)
        calls = {
            KERAS: workloads.step_call(workload, optimizer=workloads.sgd(clipnorm=c)),
            OURS: workloads.step_call(workload, transform="clip", blocks="variable", threshold=c),
            TAPE_KERAS: workloads.tape_step_call(workload, workloads.sgd(clipnorm=c)),
            TAPE_OURS: workloads.tape_step_call(
                workload, ClippedOptimizer(workloads.sgd(), clipnorm=c, blocks="variable")
            ),
        }
        rounds, repeats = DEFAULT_ROUNDS.get(name, (20, 1))
        rows, timings = cli.compare(
            name,
            calls,
            KERAS,
            width=34,
            rounds=args.rounds or rounds,
            repeats=args.repeats or repeats,
        )
        tape_ratio = median_ratio(timings.wall[TAPE_OURS], timings.wall[TAPE_KERAS])
        print(f"{name:<9} tape harness: ClippedOptimizer / SGD(clipnorm) = {tape_ratio:.3f}")
        summary[name] = rows[OURS].ratio
    print("clip_vs_keras " + " ".join(f"{k}={v:.3f}" for k, v in summary.items()))
    return summary


if __name__ == "__main__":
    main()
