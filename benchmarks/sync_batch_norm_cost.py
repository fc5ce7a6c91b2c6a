"""What synchronized BatchNorm costs under MirroredStrategy (issue 22, item 5).

    python -m benchmarks.sync_batch_norm_cost [--models deep_mlp] [--steps N] [--rounds N]
        [--repeats N] [--smoke]

The deep MLP workload (30 x Dense(128) + BatchNorm + Dropout, batch 128; see
benchmarks/workloads.py) built twice inside one MirroredStrategy over 2
logical CPUs (on a GPU-less machine; all GPUs otherwise), with
``synchronized=True`` and ``False`` on every BatchNorm layer, the same
weights, each under a guarded ``ng`` TrainStep (the deep_mlp config's
transform). Synchronized, every BatchNorm layer all-reduces the sums of x and
x**2 and the count over the replicas in the forward pass, and the two sums
again in the backward pass. One timed call is ``--steps`` steps on the same
batch, already split onto the replicas' devices; both candidates are timed
interleaved (benchmarks/timing.py); ``ms`` is per step. Ratio = synchronized /
unsynchronized step time. On 2 logical CPUs the replicas share the cores: this is the all-reduce
overhead, not a speed-up. Last line: ``sync_batch_norm <model>=<r> ...``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import keras
import tensorflow as tf

import tf_bng
from benchmarks import accelerator, cli, workloads  # cli first: it quiets TF's C++ logging
from benchmarks.timing import HEADER_CELLS, interleaved, ratio_rows
from tf_bng.training import runtime

# (steps per timed call, rounds) by workload; smoke: one round of one step.
PLAN = {"deep_mlp": (5, 30), "resnet20": (1, 10)}
CANDIDATES = ("unsynchronized", "synchronized")


def clone_with_sync(template: keras.Model, synchronized: bool) -> keras.Model:
    """``template``'s architecture and weights with every BatchNorm's ``synchronized`` set.

    Call inside ``strategy.scope()`` so the clone's variables are mirrored.
    """

    def clone_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = layer.get_config()
        if isinstance(layer, keras.layers.BatchNormalization):
            config["synchronized"] = synchronized
        return layer.__class__.from_config(config)

    model = keras.models.clone_model(template, clone_function=clone_layer)
    model.set_weights(template.get_weights())
    return model


def step_call(
    workload: workloads.Workload,
    strategy: tf.distribute.Strategy,
    synchronized: bool,
    batch,
    steps: int,
) -> Callable[[], float]:
    """``steps`` guarded ng TrainSteps of a mirrored copy of the workload's model."""
    with strategy.scope():
        model = clone_with_sync(workload.model, synchronized)
        optimizer = workloads.sgd()
    layers = [x for x in model.layers if isinstance(x, keras.layers.BatchNormalization)]
    assert layers and all(x.synchronized == synchronized for x in layers)
    step = tf_bng.TrainStep(
        model=model,
        loss=workloads.loss(),
        optimizer=optimizer,
        transform=tf_bng.TransformConfig(transform="ng"),
        global_batch_size=workload.batch_size,
        strategy=strategy,
        report_norms=False,
    )
    return accelerator.steps_call(step, batch, steps)


def main(argv: Sequence[str] | None = None) -> dict:
    p = cli.parser(__doc__, rounds=0)
    p.add_argument("--models", default="deep_mlp", help="workloads: deep_mlp, resnet20")
    p.add_argument("--steps", type=int, default=0, help="train steps per timed call")
    args = cli.parse(p, argv)
    note = accelerator.setup_devices()
    if note:
        print(note)
    strategy = runtime.mirrored_strategy()
    print(
        f"MirroredStrategy x{strategy.num_replicas_in_sync}: "
        + ", ".join(strategy.extended.worker_devices)
    )
    if strategy.num_replicas_in_sync < 2:
        raise SystemExit("Needs at least 2 replicas (2 logical CPUs or 2 GPUs).")
    print(f"{'model':<9} {'candidate':<15} {'steps':>5} {HEADER_CELLS}")
    ratios = {}
    for name in cli.names(args.models):
        workload = workloads.build(name, smoke=args.smoke)
        steps, rounds = (1, 1) if args.smoke else PLAN.get(name, (1, 10))
        steps = args.steps or steps
        batch = accelerator.place_batch(strategy, workload.batch)
        keras.utils.set_random_seed(0)
        with accelerator.quiet_retracing():
            calls = {
                c: step_call(workload, strategy, c == "synchronized", batch, steps)
                for c in CANDIDATES
            }
            timings = interleaved(calls, rounds=args.rounds or rounds, repeats=args.repeats)
        rows = ratio_rows(timings, "unsynchronized")
        for candidate, row in rows.items():
            row = dataclasses.replace(row, ms=row.ms / steps)
            print(f"{name:<9} {candidate:<15} {steps:>5} {row.cells()}", flush=True)
        ratios[name] = rows["synchronized"].ratio
    print("sync_batch_norm " + " ".join(f"{m}={r:.3f}" for m, r in ratios.items()))
    return ratios


if __name__ == "__main__":
    main()
