"""Where and how a run executes: devices, distribution strategy, precision, determinism.

Everything here touches process-wide TensorFlow state, so it is called once
at the start of a run (before any op creates the devices), never at import.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import sys
import threading
import time

import keras
import tensorflow as tf
from absl import logging

from tf_bng.errors import ClusterError

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
    "cluster_peers",
    "wait_for_workers",
    "lost_worker_error",
    "CLUSTER_ERRORS",
]

STRATEGIES = ("default", "one_device", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("none", "mixed_float16", "mixed_bfloat16")


def configure_virtual_cpus(count: int) -> int | None:
    """Split the first physical CPU into ``count`` logical devices (``count`` <= 1: no change).

    Once TensorFlow has created its devices the split can no longer change;
    then an existing split with at least ``count`` devices is accepted as is
    (a test process configures it at import time), and a smaller one is an
    error.

    Args:
        count: The logical CPUs wanted (replicas of a mirrored run without GPUs).

    Returns:
        The number of logical CPUs, or None when nothing was asked (the call then
        touches no device state: a multi-worker strategy must still be created before
        TensorFlow initializes).

    Raises:
        RuntimeError: If TensorFlow already initialized fewer than ``count`` logical CPUs.
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

    Args:
        devices: The devices to replicate over; None: all GPUs, else all logical CPUs.

    Returns:
        A new ``tf.distribute.MirroredStrategy``.
    """
    cls = tf.distribute.MirroredStrategy
    if not hasattr(cls, "_collective_key_base"):
        return cls(devices or _local_devices())
    cls._collective_key_base += _GROUP_KEYS_PER_STRATEGY
    strategy = cls(devices or _local_devices())
    # Move on again: a plain MirroredStrategy() made later must not take these keys.
    cls._collective_key_base += _GROUP_KEYS_PER_STRATEGY
    return strategy


def make_strategy(
    name: str,
    *,
    collective_timeout: float | None = None,
    tpu: str = "",
    startup_timeout: float | None = None,
) -> tf.distribute.Strategy:
    """The strategy called ``name`` (one of :data:`STRATEGIES`).

    ``multi_worker`` reads the cluster from ``TF_CONFIG`` and uses RING
    collectives, so a lost peer fails the run instead of hanging it; it
    first waits for every worker to answer, with a progress line every 10 s
    (:func:`wait_for_workers`).

    Args:
        name: ``"default"`` (TF's default strategy), ``"one_device"`` (the first GPU, else
            the first CPU), ``"mirrored"`` (all local GPUs, else all logical CPUs),
            ``"multi_worker"`` or ``"tpu"``.
        collective_timeout: ``multi_worker``: seconds a collective may take before the
            run fails; None or 0: no limit.
        tpu: ``tpu``: the TPU's address or name; empty for the local TPU.
        startup_timeout: ``multi_worker``: seconds to wait for every worker to answer;
            None or 0: no limit.

    Returns:
        The strategy.

    Raises:
        ValueError: If ``name`` is not one of :data:`STRATEGIES`.
        ClusterError: ``multi_worker``: a worker did not answer within ``startup_timeout``
            (exit code 6).
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
        # TensorFlow's constructor waits for the other workers unbounded and
        # silently, in C++ holding the GIL: wait for them here first.
        waited = wait_for_workers(startup_timeout)
        logging.info("Every worker answered after %.1f s.", waited)
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"Unknown strategy {name!r}; valid: {', '.join(STRATEGIES)}.")


def precision_policy(mixed_precision: str) -> str:
    """The Keras dtype policy name for ``runtime.mixed_precision``.

    Args:
        mixed_precision: One of :data:`PRECISIONS`.

    Returns:
        ``"float32"`` for ``"none"``, else ``mixed_precision`` itself.

    Raises:
        ValueError: If ``mixed_precision`` is not one of :data:`PRECISIONS`.
    """
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

    Args:
        mixed_precision: One of :data:`PRECISIONS` (see :func:`precision_policy`).

    Raises:
        ValueError: If ``mixed_precision`` is not one of :data:`PRECISIONS`.
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision_policy(mixed_precision))
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def set_determinism(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy, TF and Keras; optionally make TF ops deterministic (slower).

    Args:
        seed: The seed of every generator.
        deterministic: Also enable TF's op determinism (it cannot be turned off again
            in this process).
    """
    keras.utils.set_random_seed(int(seed))
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def _tf_config() -> dict:
    try:
        return json.loads(os.environ.get("TF_CONFIG", "") or "{}")
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON: {e}") from None


def task_id(strategy: tf.distribute.Strategy | None = None) -> int:
    """This worker's index (0 when not multi-worker).

    Args:
        strategy: The run's strategy; its cluster resolver wins over ``TF_CONFIG``.

    Returns:
        The task index.

    Raises:
        ValueError: If ``TF_CONFIG`` is set but is not valid JSON.
    """
    resolver = getattr(strategy, "cluster_resolver", None) if strategy is not None else None
    if resolver is not None and getattr(resolver, "task_id", None) is not None:
        return int(resolver.task_id)
    return int(_tf_config().get("task", {}).get("index", 0))


def is_chief(strategy: tf.distribute.Strategy | None = None) -> bool:
    """Whether this process writes the shared outputs (logs, checkpoints, export).

    Single-process runs are always chief; in a cluster the chief is the task
    of type ``chief``, or worker 0 when there is none (TF's convention).

    Args:
        strategy: The run's strategy; its cluster resolver wins over ``TF_CONFIG``.

    Returns:
        True on the chief (and in any single-process run).

    Raises:
        ValueError: If ``TF_CONFIG`` is set but is not valid JSON.
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

    Args:
        strategy: The run's strategy; only a ``MultiWorkerMirroredStrategy`` all-reduces.
        flag: This worker's vote.

    Returns:
        True if any worker voted True.
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return bool(flag)
    value = tf.constant(1.0 if flag else 0.0)
    votes = strategy.run(lambda: tf.identity(value))
    return bool(strategy.reduce(tf.distribute.ReduceOp.SUM, votes, axis=None).numpy() > 0)


# -- multi-worker faults -------------------------------------------------------------------------


def _cluster_tasks() -> tuple[tuple[str, int] | None, list[tuple[str, int, str]]]:
    """``(this task's (type, index), [(type, index, address) of every task])`` of ``TF_CONFIG``."""
    config = _tf_config()
    task = config.get("task", {})
    tasks = []
    for job, addresses in config.get("cluster", {}).items():
        if isinstance(addresses, dict):  # {index: address}
            addresses = [addresses[k] for k in sorted(addresses, key=int)]
        tasks += [(job, index, str(address)) for index, address in enumerate(addresses)]
    me = (task.get("type"), int(task.get("index", 0))) if task else None
    return me, tasks


def cluster_peers() -> list[tuple[str, int, str]]:
    """``(task type, index, address)`` of every other task in ``TF_CONFIG``'s cluster."""
    me, tasks = _cluster_tasks()
    return [(job, index, address) for job, index, address in tasks if (job, index) != me]


def _reachable(address: str, timeout: float = 1.0) -> bool:
    """Whether something listens on ``host:port`` (the peer's gRPC server)."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def _describe(peers) -> str:
    return ", ".join(f"{job} {index} at {address}" for job, index, address in peers)


def _my_address() -> str | None:
    me, tasks = _cluster_tasks()
    return next((address for job, index, address in tasks if (job, index) == me), None)


class _Placeholder:
    """Listen on this worker's port until TensorFlow's server takes it over.

    The workers' gRPC servers only start inside TensorFlow's strategy
    constructor, which blocks holding the GIL: so each worker first answers
    on its own port from Python, and enters TensorFlow once every peer's
    port answers (a placeholder or a server).
    """

    def __init__(self, address: str | None):
        self._socket = None
        if not address:
            return
        host, _, port = address.rpartition(":")
        try:
            sock = socket.socket(socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host.strip("[]"), int(port)))
            sock.listen(64)
            sock.settimeout(0.2)
        except (OSError, ValueError):
            return  # taken or not ours to bind: TensorFlow reports it
        self._socket = sock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="port_placeholder", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
                connection.close()
            except (TimeoutError, OSError):
                continue

    def close(self) -> None:
        if self._socket is not None:
            self._stop.set()
            self._thread.join()
            self._socket.close()
            self._socket = None


def wait_for_workers(timeout: float | None, *, every: float = 10.0, stream=None) -> float:
    """Wait until every peer of ``TF_CONFIG`` answers on its port; returns the seconds waited.

    Meanwhile this worker answers on its own port, so that peers waiting the
    same way see it before TensorFlow's server starts.

    Args:
        timeout: Seconds to wait at most; None or <= 0 waits without bound.
        every: Seconds between progress lines such as
            ``waiting for worker 1 at 127.0.0.1:PORT (12 s of 120)``, naming the peers
            that do not answer yet.
        stream: Where progress lines go; None: stderr.

    Returns:
        The seconds waited.

    Raises:
        ClusterError: If a peer does not answer within ``timeout`` (exit code 6,
            retryable).
    """
    stream = stream or sys.stderr
    timeout = float(timeout or 0)
    started = time.monotonic()
    next_report = started + every
    placeholder = _Placeholder(_my_address())
    try:
        while True:
            missing = [peer for peer in cluster_peers() if not _reachable(peer[2])]
            now = time.monotonic()
            if not missing:
                return now - started
            if timeout > 0 and now - started >= timeout:
                raise ClusterError(
                    f"{_describe(missing)} did not join within runtime.startup_timeout="
                    f"{timeout:g} s; start every worker of TF_CONFIG (or raise "
                    "runtime.startup_timeout), then rerun all workers."
                )
            if now >= next_report:
                of = f" of {timeout:.0f}" if timeout > 0 else ""
                print(
                    f"waiting for {_describe(missing)} ({now - started:.0f} s{of})",
                    file=stream,
                    flush=True,
                )
                next_report += every
            time.sleep(0.25)
    finally:
        placeholder.close()


# What a collective raises when a peer is gone or frozen: the health check or
# the coordination service aborts collectives (Unavailable / Aborted /
# Cancelled), or a collective times out (DeadlineExceeded).
CLUSTER_ERRORS = (
    tf.errors.UnavailableError,
    tf.errors.DeadlineExceededError,
    tf.errors.AbortedError,
    tf.errors.CancelledError,
    tf.errors.FailedPreconditionError,
    tf.errors.InternalError,
)

_TASK = re.compile(r"/job:(\w+)/replica:\d+/task:(\d+)")


def lost_worker_error(strategy, error: BaseException, last_checkpoint: str | None):
    """The one-line :class:`~tf_bng.errors.ClusterError` for a peer lost during training.

    Names the peer TensorFlow reported (or, failing that, the peers whose
    port no longer answers), the last good checkpoint and what to do.

    Args:
        strategy: The run's strategy (to tell this worker from its peers).
        error: What the collective raised (one of :data:`CLUSTER_ERRORS`).
        last_checkpoint: The newest saved checkpoint, named in the message; None if
            none was saved.

    Returns:
        The error to raise, or None for an ``InternalError`` /
        ``FailedPreconditionError`` that names no peer while every peer answers: that
        is no cluster fault.
    """
    me = task_id(strategy)
    text = str(error)
    named = []
    for job, index in _TASK.findall(text):
        if int(index) != me and (job, int(index)) not in named:
            named.append((job, int(index)))
    peers = {(job, index): address for job, index, address in cluster_peers()}
    if named:
        lost = [(job, index, peers.get((job, index), "?")) for job, index in named]
    else:
        lost = [
            (job, index, address)
            for (job, index), address in peers.items()
            if not _reachable(address)
        ]
    if not lost and isinstance(error, (tf.errors.InternalError, tf.errors.FailedPreconditionError)):
        return None  # no peer is missing: not a cluster fault, keep the error as it is
    who = _describe(lost) if lost else "a peer worker"
    where = (
        f"the last good checkpoint is {last_checkpoint}"
        if last_checkpoint
        else "no checkpoint was saved yet"
    )
    return ClusterError(
        f"lost {who} ({type(error).__name__}); {where}; rerun all workers to resume."
    )
