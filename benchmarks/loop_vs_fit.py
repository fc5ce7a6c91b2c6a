"""The custom loop (TrainStep.loop) against model.fit: steps per second.

    python -m benchmarks.loop_vs_fit [--models deep_mlp] [--steps-per-loop 30]
        [--rounds 5] [--smoke]

Same model, SGD momentum 0.9 and synthetic batch (repeated by tf.data, so the
input pipeline is free for both). ``none``: the loop with no transform against
``fit`` with the bare optimizer; ``ng``: the loop's ``ng`` transform against
``fit`` with ``NormalizedOptimizer`` (the same BlockTransform inside apply()).
One timed call (the ms column) is ``steps_per_loop`` steps: one
``loop(iterator, n)`` call, or one ``fit(epochs=1, steps_per_epoch=n)`` call
(Keras's default steps_per_execution=1, i.e. one tf.function call per step;
the ``spe=n`` row lets fit run n steps per call too). ``loop`` is TrainStep's default guarded
step (``skip_nonfinite=True``: finiteness checks, apply inside a ``cond``),
which fit does not do; ``loop unguarded`` shows the loop without it. Ratio =
loop steps/s / candidate steps/s.
Last line: ``loop_vs_fit <model>: none=<r> ng=<r>`` (target >= 1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tensorflow as tf

from benchmarks import cli, workloads
from benchmarks.timing import HEADER_CELLS, interleaved, ratio_rows
from tf_bng import NormalizedOptimizer


def loop_call(
    workload: workloads.Workload, transform: str, steps: int, skip_nonfinite: bool = True
) -> Callable[[], float]:
    step = workloads.train_step(workload, transform=transform, skip_nonfinite=skip_nonfinite)
    iterator = iter(step.strategy.experimental_distribute_dataset(workload.dataset()))
    n = tf.constant(steps)
    return lambda: float(step.loop(iterator, n)[0])


def fit_call(
    workload: workloads.Workload, transform: str, steps: int, steps_per_execution: int = 1
) -> Callable[[], object]:
    model = workloads.fresh_model(workload)
    optimizer = workloads.sgd()
    if transform == "ng":
        optimizer = NormalizedOptimizer(optimizer)
    model.compile(
        optimizer=optimizer, loss=workloads.loss(), steps_per_execution=steps_per_execution
    )
    dataset = workload.dataset()
    return lambda: model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)


def main(argv: Sequence[str] | None = None) -> dict:
    p = cli.parser(__doc__, rounds=5)
    p.add_argument("--models", default="deep_mlp")
    p.add_argument("--steps-per-loop", type=int, default=30)
    args = cli.parse(p, argv)
    steps = 2 if args.smoke else args.steps_per_loop

    print(f"{'model':<9} {'transform':<9} {'candidate':<14} {'steps/s':>8} {HEADER_CELLS}")
    results = {}
    for name in cli.names(args.models):
        workload = workloads.build(name, smoke=args.smoke)
        summary = results[name] = {}
        for transform in ("none", "ng"):
            calls = {
                "loop": loop_call(workload, transform, steps),
                "loop unguarded": loop_call(workload, transform, steps, skip_nonfinite=False),
                "fit": fit_call(workload, transform, steps),
                f"fit spe={steps}": fit_call(workload, transform, steps, steps),
            }
            times = interleaved(calls, rounds=args.rounds, repeats=args.repeats)
            # Time ratio to the loop = the loop's steps/s over the candidate's.
            for candidate, row in ratio_rows(times, "loop").items():
                print(
                    f"{name:<9} {transform:<9} {candidate:<14} {steps / row.ms * 1e3:8.1f} "
                    f"{row.cells()}"
                )
                if candidate == "fit":
                    summary[transform] = row.ratio
        print(f"loop_vs_fit {name}: " + " ".join(f"{t}={r:.3f}" for t, r in summary.items()))
    return results


if __name__ == "__main__":
    main()
