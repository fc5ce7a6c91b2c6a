"""Images/s and the ng/none step-time ratio of CIFAR ResNets on accelerators (issue 12, item 4).

    python -m benchmarks.accelerator [--models resnet56,resnet110] [--devices 1,all]
        [--precisions float32,mixed_float16] [--xla off,on] [--batch-per-replica 128]
        [--steps N] [--rounds N] [--repeats N] [--smoke]

On a machine with GPUs: ResNet-56 and ResNet-110 at CIFAR shapes (32x32x3, 10
classes, synthetic data), batch 128 per replica, on one device (the default
strategy) and on all GPUs under MirroredStrategy, in float32 and
mixed_float16 (with TrainStep's dynamic loss scale), without and with XLA
(``TrainStep(jit_compile=True)``). Each cell times a ``none`` and an ``ng``
(layer blocks) guarded TrainStep interleaved (see benchmarks/timing.py); one
timed call is ``--steps`` steps on the same batch. Ratio = ng step time /
none step time (median per round; 1.0 = the transform is free).

Without a GPU the full grid would take hours on a CPU, so a reduced version
runs (ResNet-20, small batch, few steps; "all devices" = 2 logical CPUs on the
same cores, which measures the strategy's overhead, not a speed-up) and the
output says so. A cell that cannot run (today: XLA under a multi-replica
MirroredStrategy, which TrainStep refuses) is printed as ``n/a (reason)``.
Last line: ``accelerator [reduced] ng/none <model>/<devices>/<precision>[+xla]=<r>|n/a ...``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

import tf_bng
from benchmarks import cli, workloads  # first: cli quiets TensorFlow's C++ logging
from benchmarks.timing import Row, interleaved, ratio_rows
from tf_bng.models.layers import logits
from tf_bng.step import loss_scaling
from tf_bng.training import runtime

PRECISIONS = ("float32", "mixed_float16")
SHORT_PRECISION = {"float32": "f32", "mixed_float16": "f16"}


@dataclasses.dataclass(frozen=True)
class Plan:
    """What one run measures; ``reduced`` says why it is not the full GPU grid ("" if it is)."""

    models: tuple[str, ...]
    side: int
    batch_per_replica: int
    steps: int
    rounds: int
    reduced: str = ""


GPU_PLAN = Plan(
    models=("resnet56", "resnet110"), side=32, batch_per_replica=128, steps=20, rounds=10
)
# A CPU ResNet-20 step at batch 16 takes ~0.1 s in float32 and ~0.5 s in mixed_float16 (at load
# ~8); tracing the 14 steps takes most of the ~10 minutes. Fewer rounds were too noisy at load 8.
CPU_PLAN = Plan(
    models=("resnet20",),
    side=32,
    batch_per_replica=16,
    steps=2,
    rounds=15,
    reduced=(
        "no GPU found, and ResNet-56/110 at batch 128 would take hours on these CPUs: "
        "ResNet-20 at a small batch and few steps instead; 'all devices' = 2 logical CPUs on "
        "the same cores (the strategy's overhead, not a speed-up); CPUs have no fast float16 "
        "kernels. Images/s say nothing about a GPU; the ratios are the transform's share of a "
        "CPU step."
    ),
)
SMOKE_PLAN = Plan(
    models=("tiny_cnn",),
    side=8,
    batch_per_replica=2,
    steps=1,
    rounds=1,
    reduced="--smoke: tiny model, one round; the numbers mean nothing",
)


@dataclasses.dataclass(frozen=True)
class Cell:
    """One configuration of the grid: model, device setting, precision, XLA."""

    model: str
    devices: str  # "1" or "all"
    precision: str
    xla: bool

    def key(self, replicas: int) -> str:
        where = "1dev" if self.devices == "1" else f"mirrored{replicas}"
        return f"{self.model}/{where}/{SHORT_PRECISION[self.precision]}" + (
            "+xla" if self.xla else ""
        )


@dataclasses.dataclass(frozen=True)
class Result:
    """Images/s of both candidates and the ng row against none, or why the cell did not run."""

    replicas: int
    none_ips: float = 0.0
    ng_ips: float = 0.0
    row: Row | None = None
    reason: str = ""


def choose_plan(smoke: bool) -> Plan:
    """The full grid when TensorFlow sees a GPU, else the reduced CPU version."""
    if smoke:
        return SMOKE_PLAN
    return GPU_PLAN if tf.config.list_physical_devices("GPU") else CPU_PLAN


def setup_devices() -> str:
    """Two logical CPUs on a GPU-less machine so MirroredStrategy has two replicas.

    Must run before TensorFlow creates its devices; returns a note when that
    was too late (then "all devices" is whatever logical CPUs already exist).
    """
    if tf.config.list_physical_devices("GPU"):
        return ""
    try:
        runtime.configure_virtual_cpus(2)
    except RuntimeError as e:
        return f"could not split the CPU: {e}"
    return ""


def strategy_for(devices: str) -> tf.distribute.Strategy:
    """The default strategy for one device; a fresh MirroredStrategy over all devices."""
    return tf.distribute.get_strategy() if devices == "1" else runtime.mirrored_strategy()


def _devices_of(strategy: tf.distribute.Strategy) -> list[str]:
    if strategy is tf.distribute.get_strategy():
        gpus = tf.config.list_logical_devices("GPU")
        return [(gpus or tf.config.list_logical_devices("CPU"))[0].name]
    return list(strategy.extended.worker_devices)


def place_batch(strategy: tf.distribute.Strategy, batch: tuple[np.ndarray, ...]):
    """Each replica's slice of the global batch, already on its device (no copy per step)."""
    devices = _devices_of(strategy)
    if strategy is tf.distribute.get_strategy():
        with tf.device(devices[0]):
            return tuple(tf.identity(t) for t in batch)

    def replica_slice(ctx: tf.distribute.experimental.ValueContext):
        i = ctx.replica_id_in_sync_group
        with tf.device(devices[i]):
            return tuple(tf.identity(np.array_split(t, len(devices))[i]) for t in batch)

    return strategy.experimental_distribute_values_from_function(replica_slice)


def build_model(name: str, side: int) -> keras.Model:
    """``resnet<depth>``: the CIFAR ResNet; ``tiny_cnn``: the smoke stand-in (traces in seconds)."""
    shape = (side, side, 3)
    if name.startswith("resnet"):
        return tf_bng.models.cifar_resnet(
            depth=int(name[len("resnet") :]), num_classes=workloads.NUM_CLASSES, input_shape=shape
        )
    if name != "tiny_cnn":
        raise SystemExit(f"Unknown model {name!r}; valid: resnet<6n+2>, tiny_cnn.")
    inputs = keras.Input(shape)
    x = keras.layers.Conv2D(4, 3, use_bias=False)(inputs)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, logits(x, workloads.NUM_CLASSES), name=name)


def build_step(
    cell: Cell, plan: Plan, strategy: tf.distribute.Strategy, transform: str
) -> tf_bng.TrainStep:
    """A guarded TrainStep on a fresh model; the same seed, so both candidates start equal."""
    keras.utils.set_random_seed(0)
    mixed = cell.precision == "mixed_float16"
    with strategy.scope():
        with runtime.precision_scope("mixed_float16" if mixed else "none"):
            model = build_model(cell.model, plan.side)
        optimizer = workloads.sgd()
        loss_scale = loss_scaling.DynamicLossScale() if mixed else None
    return tf_bng.TrainStep(
        model=model,
        loss=workloads.loss(),
        optimizer=optimizer,
        transform=tf_bng.TransformConfig(transform=transform, blocks="layer"),
        global_batch_size=plan.batch_per_replica * strategy.num_replicas_in_sync,
        strategy=strategy,
        jit_compile=cell.xla,
        loss_scale=loss_scale,
        report_norms=False,
    )


def steps_call(step: tf_bng.TrainStep, batch, steps: int) -> Callable[[], float]:
    """``steps`` train steps on ``batch``; reading the last loss waits for the device."""

    def run() -> float:
        for _ in range(steps):
            loss = step.step(batch).loss
        return float(loss)

    return run


@contextlib.contextmanager
def quiet_retracing():
    """Every candidate is a new tf.function, so TF warns about retracing: noise here."""
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        yield
    finally:
        logger.setLevel(level)


def short_reason(error: Exception) -> str:
    """The first sentence of an error, short enough for a table cell."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    text = text.split(" (")[0].split(";")[0]
    return text if len(text) <= 90 else text[:87] + "..."


def measure_cell(cell: Cell, plan: Plan, *, repeats: int) -> Result:
    """Both candidates of one cell timed interleaved, or the reason the cell cannot run."""
    strategy = strategy_for(cell.devices)
    replicas = strategy.num_replicas_in_sync
    global_batch = plan.batch_per_replica * replicas
    x, y = workloads._synthetic((plan.side, plan.side, 3), global_batch)
    batch = place_batch(strategy, (x, y))
    calls = {}
    try:
        with quiet_retracing():
            for transform in ("none", "ng"):
                step = build_step(cell, plan, strategy, transform)
                calls[transform] = steps_call(step, batch, plan.steps)
                calls[transform]()  # trace and compile outside the timing
    except (ValueError, NotImplementedError, tf.errors.OpError) as e:
        return Result(replicas=replicas, reason=short_reason(e))
    rows = ratio_rows(interleaved(calls, rounds=plan.rounds, repeats=repeats, warmup=1), "none")
    images = plan.steps * global_batch * 1e3
    return Result(replicas, images / rows["none"].ms, images / rows["ng"].ms, rows["ng"])


HEADER = (
    f"{'model':<9} {'devices':<11} {'precision':<14} {'xla':<4} {'none img/s':>10} "
    f"{'ng img/s':>9} {'ratio':>7}  {'q25-q75':>11} {'cpu ratio':>9}"
)


def format_row(cell: Cell, result: Result) -> str:
    where = "1" if cell.devices == "1" else f"mirrored x{result.replicas}"
    head = f"{cell.model:<9} {where:<11} {cell.precision:<14} {'on' if cell.xla else 'off':<4}"
    if result.row is None:
        return f"{head} n/a ({result.reason})"
    r = result.row
    return (
        f"{head} {result.none_ips:10.1f} {result.ng_ips:9.1f} {r.ratio:7.3f}  "
        f"{r.q25:5.3f}-{r.q75:5.3f} {r.cpu_ratio:9.3f}"
    )


def summary(results: dict[Cell, Result], reduced: bool) -> str:
    cells = " ".join(
        f"{cell.key(res.replicas)}=" + ("n/a" if res.row is None else f"{res.row.ratio:.3f}")
        for cell, res in results.items()
    )
    return f"accelerator {'reduced ' if reduced else ''}ng/none {cells}"


def grid(
    plan: Plan, devices: Sequence[str], precisions: Sequence[str], xla: Sequence[str]
) -> list[Cell]:
    for name, given, valid in [
        ("precision", precisions, PRECISIONS),
        ("devices", devices, ("1", "all")),
        ("xla", xla, ("off", "on")),
    ]:
        for value in given:
            if value not in valid:
                raise SystemExit(f"Unknown {name} {value!r}; valid: {', '.join(valid)}.")
    return [
        Cell(model, where, precision, flag == "on")
        for model in plan.models
        for where in devices
        for precision in precisions
        for flag in xla
    ]


def main(argv: Sequence[str] | None = None) -> dict:
    p = cli.parser(__doc__, rounds=0)
    p.add_argument("--models", default=None, help="resnet<depth>,... (GPU: resnet56,resnet110)")
    p.add_argument("--devices", default="1,all", help="'1' device and/or 'all' mirrored")
    p.add_argument("--precisions", default=",".join(PRECISIONS))
    p.add_argument("--xla", default="off,on", help="jit_compile off and/or on")
    p.add_argument("--batch-per-replica", type=int, default=0)
    p.add_argument("--steps", type=int, default=0, help="train steps per timed call")
    args = cli.parse(p, argv)
    note = setup_devices()
    plan = choose_plan(args.smoke)
    plan = dataclasses.replace(
        plan,
        models=tuple(cli.names(args.models)) if args.models else plan.models,
        batch_per_replica=args.batch_per_replica or plan.batch_per_replica,
        steps=args.steps or plan.steps,
        rounds=args.rounds or plan.rounds,
    )
    if plan.reduced:
        print(f"REDUCED RUN: {plan.reduced}")
    if note:
        print(note)
    print(
        f"batch {plan.batch_per_replica}/replica, {plan.steps} steps per call, "
        f"{plan.rounds} rounds; devices: "
        + ", ".join(
            d.name for d in tf.config.list_logical_devices() if "CPU" in d.name or "GPU" in d.name
        )
    )
    print(HEADER)
    results = {}
    for cell in grid(
        plan, cli.names(args.devices), cli.names(args.precisions), cli.names(args.xla)
    ):
        results[cell] = measure_cell(cell, plan, repeats=args.repeats)
        print(format_row(cell, results[cell]), flush=True)
        gc.collect()
    print(summary(results, bool(plan.reduced)))
    return results


if __name__ == "__main__":
    main()
