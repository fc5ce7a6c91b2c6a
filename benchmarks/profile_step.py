"""Where a train step's time goes: a tf.profiler trace summed by part of the step.

    python -m benchmarks.profile_step [--model resnet20] [--transforms none,ng]
        [--blocks layer] [--steps 3] [--logdir DIR] [--smoke]

Traces ``--steps`` steps of each TrainStep (after two warm-up steps) and sums
the executor time of every TF op by where it comes from: the forward pass
(ops under the model's name), backprop (``gradient_tape/``), the block
transform (``block_transform/``, the name scope BlockTransform opens), the
optimizer update (``sgd/``) and the rest (loss, all-reduce, bookkeeping).
Op time is summed over the executor threads, so it exceeds wall time when
ops run in parallel; the traced step is also slower than an untraced one.
With ``--logdir`` the trace stays there for TensorBoard's trace viewer
(``tensorboard --logdir DIR``, Profile tab; needs tensorboard-plugin-profile).
Last line: ``profile <model> <transform>/<blocks>: transform=<ms>/step
(<pct>% of op time)`` for the last transform listed.
"""

from __future__ import annotations

import collections
import glob
import os
import tempfile
from collections.abc import Sequence

import tensorflow as tf
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from benchmarks import cli, workloads

PARTS = ("forward", "backprop", "block_transform", "optimizer", "other")


def part_of(op_name: str, model_name: str, optimizer_name: str) -> str:
    """Which part of the step an op belongs to, from its name scope."""
    if "block_transform/" in op_name:
        return "block_transform"
    if op_name.startswith("gradient_tape/"):
        return "backprop"
    if op_name.startswith(model_name):
        return "forward"
    if f"/{optimizer_name}/" in op_name or op_name.startswith(f"{optimizer_name}/"):
        return "optimizer"
    return "other"


def op_times(logdir: str):
    """``(op name, op type, seconds)`` of every TF op event in the trace under ``logdir``."""
    (path,) = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue  # the executor threads; Eigen worker lines hold no op events
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                op_name, sep, op_type = name.rpartition(":")
                if sep and "::" not in name:
                    yield op_name, op_type, event.duration_ps * 1e-12


def profile(workload: workloads.Workload, transform: str, blocks: str, steps: int, logdir: str):
    """Per-step op seconds and op counts by part, and the transform's op types."""
    step = workloads.train_step(workload, transform=transform, blocks=blocks)
    batch = workload.tensors()
    for _ in range(2):
        step.step(batch)[0].numpy()
    tf.profiler.experimental.start(logdir)
    for _ in range(steps):
        step.step(batch)[0].numpy()
    tf.profiler.experimental.stop()
    seconds, counts = collections.Counter(), collections.Counter()
    transform_types = collections.Counter()
    for op_name, op_type, s in op_times(logdir):
        part = part_of(op_name, step.model.name, step.optimizer.name)
        seconds[part] += s / steps
        counts[part] += 1 / steps
        if part == "block_transform":
            transform_types[op_type] += s / steps
    return seconds, counts, transform_types


def main(argv: Sequence[str] | None = None) -> dict:
    p = cli.parser(__doc__, rounds=1)
    p.add_argument("--model", default="resnet20")
    p.add_argument("--transforms", default="none,ng")
    p.add_argument("--blocks", default="layer")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--logdir", default=None)
    args = cli.parse(p, argv)
    steps = 1 if args.smoke else args.steps
    workload = workloads.build(args.model, smoke=args.smoke)

    print(f"{'transform':<12} " + " ".join(f"{part:>16}" for part in PARTS) + f" {'total':>9}")
    result = {}
    for transform in cli.names(args.transforms):
        with tempfile.TemporaryDirectory() as tmp:
            logdir = os.path.join(args.logdir, transform) if args.logdir else tmp
            seconds, counts, types = profile(workload, transform, args.blocks, steps, logdir)
        total = sum(seconds.values())
        cells = " ".join(f"{1e3 * seconds[part]:8.2f}ms/{counts[part]:5.0f}" for part in PARTS)
        print(f"{transform:<12} {cells} {1e3 * total:7.1f}ms   (ms of op time / ops, per step)")
        if types:
            top = ", ".join(f"{t} {1e3 * s:.2f}" for t, s in types.most_common(6))
            print(f"{'':<12} block_transform ms by op type: {top}")
        result[transform] = (seconds["block_transform"], total)
    last = cli.names(args.transforms)[-1]
    ms, total = 1e3 * result[last][0], 1e3 * result[last][1]
    print(
        f"profile {args.model} {last}/{args.blocks}: transform={ms:.2f}ms/step "
        f"({100 * ms / total:.2f}% of op time)"
    )
    return result


if __name__ == "__main__":
    main()
