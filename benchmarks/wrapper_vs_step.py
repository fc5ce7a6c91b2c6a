"""The NormalizedOptimizer wrapper in a plain tape step against TrainStep with ``ng``.

    python -m benchmarks.wrapper_vs_step [--models deep_mlp,resnet20] [--rounds N] [--smoke]

Both compute NG (l2, layer blocks) with the same BlockTransform and step with
SGD momentum 0.9 on the same model and batch: the wrapper inside
``optimizer.apply`` of a hand-written ``tf.function`` tape step, TrainStep in
its own step (all-reduce -> transform -> apply). ``tape + SGD`` (no
transform) is shown for scale. Ratios are to TrainStep. Last line:
``wrapper_vs_step deep_mlp=<r> resnet20=<r>`` (wrapper time / TrainStep time).
"""

from __future__ import annotations

from collections.abc import Sequence

from benchmarks import cli, workloads
from benchmarks.timing import HEADER_CELLS
from tf_bng import NormalizedOptimizer

DEFAULT_ROUNDS = {"deep_mlp": (60, 2), "resnet20": (20, 1)}
REFERENCE = "TrainStep ng"
WRAPPER = "tape + NormalizedOptimizer"


def main(argv: Sequence[str] | None = None) -> dict:
    p = cli.parser(__doc__, rounds=0, repeats=0)
    p.add_argument("--models", default="deep_mlp,resnet20")
    args = cli.parse(p, argv)

    print(f"{'model':<9} {'candidate':<26} {HEADER_CELLS}")
    summary = {}
    for name in cli.names(args.models):
        workload = workloads.build(name, smoke=args.smoke)
        calls = {
            REFERENCE: workloads.step_call(workload, transform="ng"),
            WRAPPER: workloads.tape_step_call(workload, NormalizedOptimizer(workloads.sgd())),
            "tape + SGD (no transform)": workloads.tape_step_call(workload, workloads.sgd()),
        }
        rounds, repeats = DEFAULT_ROUNDS.get(name, (20, 1))
        rows, _ = cli.compare(
            name,
            calls,
            REFERENCE,
            width=26,
            rounds=args.rounds or rounds,
            repeats=args.repeats or repeats,
        )
        summary[name] = rows[WRAPPER].ratio
    print("wrapper_vs_step " + " ".join(f"{k}={v:.3f}" for k, v in summary.items()))
    return summary


if __name__ == "__main__":
    main()
