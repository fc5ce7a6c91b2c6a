"""Where and how a run executes: devices, distribution strategy, precision, determinism.

Everything here touches process-wide TensorFlow state, so it is called once
at the start of a run (before any op creates the devices), never at import.
"""

from __future__ import annotations

import contextlib
import json
import os

import keras
import tensorflow as tf
from absl import logging

__all__ = [
    "STRATEGIES",
    "PRECISIONS",
    "configure_virtual_cpus",
    "make_strategy",
    "mirrored_strategy",
    "precision_policy",
    "precision_scope",
    "set_determinism",
    "is_chief",
    "task_id",
    "any_worker",
]

STRATEGIES = ("default", "one_device", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("none", "mixed_float16", "mixed_bfloat16")


def configure_virtual_cpus(count: int) -> int | None:
    """Split the first physical CPU into ``count`` logical devices (``count`` <= 1: no change).

    Returns the number of logical CPUs, or None when nothing was asked (the
    call then touches no device state: a multi-worker strategy must still be
    created before TensorFlow initializes). Once TensorFlow has created its
    devices the split can no longer change; then an existing split with at
    least ``count`` devices is accepted as is (a test process configures it
    at import time), and a smaller one is an error.
    """
    if count <= 1:
        return None
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu) or []
    if len(current) != count:
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
            )
            return count
        except RuntimeError:
            pass  # devices already initialized: check below what we have
    have = len(tf.config.list_logical_devices("CPU"))
    if have < count:
        raise RuntimeError(
            f"{count} virtual CPUs asked but TensorFlow already initialized {have} logical "
            "CPU(s); set it before any TensorFlow op runs (start a fresh process)."
        )
    if have != count:
        logging.warning("%d virtual CPUs asked: keeping the existing %d logical CPUs.", count, have)
    return have


def _local_devices() -> list[str]:
    """All GPUs if any, else all logical CPUs: what a mirrored run replicates over."""
    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]


_GROUP_KEYS_PER_STRATEGY = 100_000


def mirrored_strategy(devices: list[str] | None = None) -> tf.distribute.MirroredStrategy:
    """A MirroredStrategy with collective group keys no earlier strategy of this process used.

    Every MirroredStrategy numbers its collective ops from the same group and
    instance keys, and TensorFlow caches each key's tensor shape for the life
    of the process: a second strategy in one process (tests, sweeps, a
    notebook) whose first all-reduce has another shape fails with "Shape
    mismatch in the collective instance 100". TF's own tests avoid this by
    moving ``_collective_key_base``; so do we.
    """
    cls = tf.distribute.MirroredStrategy
    if hasattr(cls, "_collective_key_base"):
        cls._collective_key_base += _GROUP_KEYS_PER_STRATEGY
    return cls(devices or _local_devices())


def make_strategy(
    name: str, *, collective_timeout: float | None = None, tpu: str = ""
) -> tf.distribute.Strategy:
    """The strategy called ``name`` (one of :data:`STRATEGIES`).

    ``multi_worker`` reads the cluster from ``TF_CONFIG`` and uses RING
    collectives with ``collective_timeout`` seconds, so a lost peer fails the
    run instead of hanging it. ``tpu`` resolves ``tpu`` (an address or name;
    empty for the local TPU).
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(_local_devices()[0])
    if name == "mirrored":
        # Without a GPU, MirroredStrategy() would use only /cpu:0: list them all.
        return mirrored_strategy(_local_devices())
    if name == "multi_worker":
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING,
            timeout_seconds=float(collective_timeout or 0) or None,
        )
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"Unknown strategy {name!r}; valid: {', '.join(STRATEGIES)}.")


def precision_policy(mixed_precision: str) -> str:
    """The Keras dtype policy name for ``runtime.mixed_precision``."""
    if mixed_precision not in PRECISIONS:
        raise ValueError(
            f"Unknown mixed precision {mixed_precision!r}; valid: {', '.join(PRECISIONS)}."
        )
    return "float32" if mixed_precision == "none" else mixed_precision


@contextlib.contextmanager
def precision_scope(mixed_precision: str):
    """Build layers under the mixed-precision policy, then restore the global one.

    Layers read the global policy when constructed, so the policy only needs
    to be set while the model is built; restoring it keeps the process clean
    for the next run (tests, the demo).
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision_policy(mixed_precision))
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def set_determinism(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy, TF and Keras; optionally make TF ops deterministic (slower)."""
    keras.utils.set_random_seed(int(seed))
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def _tf_config() -> dict:
    try:
        return json.loads(os.environ.get("TF_CONFIG", "") or "{}")
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON: {e}") from None


def task_id(strategy: tf.distribute.Strategy | None = None) -> int:
    """This worker's index (0 when not multi-worker)."""
    resolver = getattr(strategy, "cluster_resolver", None) if strategy is not None else None
    if resolver is not None and getattr(resolver, "task_id", None) is not None:
        return int(resolver.task_id)
    return int(_tf_config().get("task", {}).get("index", 0))


def is_chief(strategy: tf.distribute.Strategy | None = None) -> bool:
    """Whether this process writes the shared outputs (logs, checkpoints, export).

    Single-process runs are always chief; in a cluster the chief is the task
    of type ``chief``, or worker 0 when there is none (TF's convention).
    """
    resolver = getattr(strategy, "cluster_resolver", None) if strategy is not None else None
    if resolver is not None and getattr(resolver, "task_type", None) is not None:
        task_type, index = resolver.task_type, resolver.task_id
        cluster = resolver.cluster_spec().as_dict()
    else:
        config = _tf_config()
        task = config.get("task", {})
        task_type, index = task.get("type"), int(task.get("index", 0))
        cluster = config.get("cluster", {})
    if task_type is None or task_type == "chief":
        return True
    return task_type == "worker" and index == 0 and "chief" not in cluster


def any_worker(strategy: tf.distribute.Strategy | None, flag: bool) -> bool:
    """Whether ``flag`` is set on any worker of a multi-worker run (``flag`` itself otherwise).

    Decisions that change what a worker does next (stop on a signal, refuse
    to save) must be the same on every worker, or the others hang in their
    next collective. One scalar all-reduce; every worker must call it at the
    same point of the loop.
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return bool(flag)
    value = tf.constant(1.0 if flag else 0.0)
    votes = strategy.run(lambda: tf.identity(value))
    return bool(strategy.reduce(tf.distribute.ReduceOp.SUM, votes, axis=None).numpy() > 0)
