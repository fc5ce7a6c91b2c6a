"""Cost of the block transform inside one train step, against ``none``.

    python -m benchmarks.step_overhead [--models deep_mlp,resnet20]
        [--transforms ng,ng_adap,clip,global_clip] [--blocks layer,variable,global]
        [--unguarded] [--rounds N] [--repeats N] [--smoke]

Same model, optimizer (SGD momentum 0.9) and batch; only ``transform`` differs.
The steps are TrainStep's defaults, i.e. guarded (``skip_nonfinite=True``:
finiteness checks and the apply inside a ``cond``); ``--unguarded`` times
``skip_nonfinite=False`` steps instead, which isolates the transform's cost.
All candidates of a model are timed interleaved (see benchmarks/timing.py);
the figure is the median per-round ratio to ``none``, with the interquartile
range of those ratios as its noise band, and the median ratio of process CPU
times (steadier than wall clock when other processes load the box).
Without --transforms/--blocks, the deep MLP (many small layers: the worst case
for per-block ops) runs every transform x blocks mode and ResNet-20 runs the
headline ``ng``/layer only.
Last line: ``overhead deep_mlp=<r> resnet20=<r>`` (ng, layer blocks, l2, wall
clock); targets <= 1.10 and <= 1.03.
"""

from __future__ import annotations

from collections.abc import Sequence

from benchmarks import cli, workloads
from benchmarks.timing import HEADER_CELLS, interleaved, ratio_rows

ALL_TRANSFORMS = "ng,ng_adap,clip,global_clip"
ALL_BLOCKS = "layer,variable,global"
DEFAULT_PLAN = {"deep_mlp": (ALL_TRANSFORMS, ALL_BLOCKS), "resnet20": ("ng", "layer")}
# (rounds, repeats): a deep-MLP step takes ~20-30 ms, a ResNet-20 step ~0.35-0.7 s
# (load 2 / load 5 on 2 cores); the default run takes ~2-4 minutes accordingly.
# many_blocks (not run by default): a step takes ~30-40 ms at load 5, but tracing 201 blocks ~1 min.
DEFAULT_ROUNDS = {"deep_mlp": (40, 2), "resnet20": (30, 1), "many_blocks": (60, 3)}
HEADLINE = ("ng", "layer")


def candidates_for(transforms: Sequence[str], blocks: Sequence[str]) -> list[tuple[str, str]]:
    """(transform, blocks) pairs; ``global_clip`` always uses one global block."""
    pairs = []
    for transform in transforms:
        for mode in ["global"] if transform == "global_clip" else blocks:
            if (transform, mode) not in pairs:
                pairs.append((transform, mode))
    return pairs


def measure(workload: workloads.Workload, pairs, *, rounds: int, repeats: int, **step) -> dict:
    """{(transform, blocks): Row against ``none``} from one interleaved run."""
    calls = {"none": workloads.step_call(workload, **step)}
    for transform, blocks in pairs:
        calls[f"{transform}/{blocks}"] = workloads.step_call(
            workload, transform=transform, blocks=blocks, **step
        )
    rows = ratio_rows(interleaved(calls, rounds=rounds, repeats=repeats), "none")
    return {"none": rows.pop("none"), **{tuple(k.split("/")): row for k, row in rows.items()}}


def main(argv: Sequence[str] | None = None) -> dict:
    p = cli.parser(__doc__, rounds=0, repeats=0)
    p.add_argument("--models", default="deep_mlp,resnet20")
    p.add_argument("--transforms", default=None, help=f"default per model; all: {ALL_TRANSFORMS}")
    p.add_argument("--blocks", default=None, help=f"default per model; all: {ALL_BLOCKS}")
    p.add_argument("--unguarded", action="store_true", help="TrainStep(skip_nonfinite=False)")
    args = cli.parse(p, argv)

    headline = {}
    print(f"{'model':<9} {'transform':<12} {'blocks':<9} {'none ms':>9} {HEADER_CELLS}")
    for name in cli.names(args.models):
        plan_t, plan_b = DEFAULT_PLAN.get(name, (ALL_TRANSFORMS, ALL_BLOCKS))
        transforms = cli.names(args.transforms or plan_t)
        pairs = candidates_for(transforms, cli.names(args.blocks or plan_b))
        rounds, repeats = DEFAULT_ROUNDS.get(name, (20, 1))
        results = measure(
            workloads.build(name, smoke=args.smoke),
            pairs,
            rounds=args.rounds or rounds,
            repeats=args.repeats or repeats,
            skip_nonfinite=not args.unguarded,
        )
        base = results.pop("none")
        for (transform, blocks), row in results.items():
            print(f"{name:<9} {transform:<12} {blocks:<9} {base.ms:9.2f} {row.cells()}")
            if (transform, blocks) == HEADLINE:
                headline[name] = row.ratio
    print("overhead " + " ".join(f"{k}={v:.3f}" for k, v in headline.items()))
    return headline


if __name__ == "__main__":
    main()
