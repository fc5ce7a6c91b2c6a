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
from tf_bng import NormalizedOptimizer

DEFAULT_ROUNDS = {"deep_mlp": (60, 2), "resnet20": (20, 1)}
REFERENCE = "TrainStep ng"
WRAPPER = "tape + NormalizedOptimizer"


def main(argv: Sequence[str] | None = None) -> dict:
    p = cli.parser(__doc__, rounds=0, repeats=0)
    p.add_argument("--models", default="deep_mlp,resnet20")
    args = cli.parse(p, argv)

    def calls_for(workload):
        return {
            REFERENCE: workloads.step_call(workload, transform="ng"),
            WRAPPER: workloads.tape_step_call(workload, NormalizedOptimizer(workloads.sgd())),
            "tape + SGD (no transform)": workloads.tape_step_call(workload, workloads.sgd()),
        }

    return cli.headline_per_model(
        args,
        calls_for,
        reference=REFERENCE,
        candidate=WRAPPER,
        headline="wrapper_vs_step",
        default_rounds=DEFAULT_ROUNDS,
        width=26,
    )


if __name__ == "__main__":
    main()
