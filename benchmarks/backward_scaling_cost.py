"""What backward scaling costs: ``ng`` with ``backward_scaling=True`` vs plain ``ng`` (issue 13).

    python -m benchmarks.backward_scaling_cost [--models deep_mlp,resnet20] [--rounds N] [--smoke]

Same model, optimizer, batch and guarded TrainStep; the deep MLP is built
without its l2 penalty (backward scaling refuses regularization losses).
Timed interleaved (see benchmarks/timing.py). Last line:
``backward_scaling deep_mlp=<r> resnet20=<r>`` (target <= 1.05).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from benchmarks import cli, workloads
from benchmarks.timing import HEADER_CELLS, interleaved, ratio_rows
from tf_bng import TrainStep, TransformConfig, models

ROUNDS = {"deep_mlp": (30, 2), "resnet20": (20, 1)}


def _without_penalty(workload: workloads.Workload) -> workloads.Workload:
    if workload.name != "deep_mlp":
        return workload
    template = workload.model
    model = models.mlp(
        depth=len(
            [x for x in template.layers if x.name.startswith("hidden") and "_" not in x.name]
        ),
        width=template.get_layer("hidden1").units,
        activation="relu",
        batch_norm=True,
        dropout=0.2,
        l2=0.0,
        input_shape=template.inputs[0].shape[1:],
        num_classes=workloads.NUM_CLASSES,
    )
    return dataclasses.replace(workload, model=model)


def _call(workload, scaling: bool):
    step = TrainStep(
        model=workloads.fresh_model(workload),
        loss=workloads.loss(),
        optimizer=workloads.sgd(),
        transform=TransformConfig(transform="ng"),
        global_batch_size=workload.batch_size,
        report_norms=False,
        backward_scaling=scaling,
    )
    batch = workload.tensors()
    return lambda: float(step.step(batch)[0])


def main(argv: Sequence[str] | None = None) -> dict:
    p = cli.parser(__doc__, rounds=0, repeats=0)
    p.add_argument("--models", default="deep_mlp,resnet20")
    args = cli.parse(p, argv)
    ratios = {}
    print(f"{'model':<10} {'candidate':<18} {'ng ms':>9} {HEADER_CELLS}")
    for name in cli.names(args.models):
        workload = _without_penalty(workloads.build(name, smoke=args.smoke))
        rounds, repeats = ROUNDS.get(name, (20, 1))
        calls = {"ng": _call(workload, False), "ng+backward_scaling": _call(workload, True)}
        rows = ratio_rows(
            interleaved(calls, rounds=args.rounds or rounds, repeats=args.repeats or repeats), "ng"
        )
        base = rows.pop("ng")
        row = rows["ng+backward_scaling"]
        print(f"{name:<10} {'ng+backward_scaling':<18} {base.ms:9.2f} {row.cells()}")
        ratios[name] = row.ratio
    print("backward_scaling " + " ".join(f"{k}={v:.3f}" for k, v in ratios.items()))
    return ratios


if __name__ == "__main__":
    main()
