"""Multi-worker faults end in one line and the retryable exit code 6 (issue 19).

Real worker processes of the binary on 127.0.0.1 (free ports, hard
timeouts): a worker whose peer never starts waits ``runtime.startup_timeout``
with a progress line, then fails; a peer killed (kill -9) or frozen
(SIGSTOP) mid-run makes the survivor fail within seconds, naming the lost
worker and the last good checkpoint.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import time

import pytest
from helpers import TINY_MNIST_SETTINGS, error_lines, free_ports, start_worker

HARD_TIMEOUT = 480  # seconds for any one process (generous: the 2 cores are shared)
LONG_RUN = dict(
    TINY_MNIST_SETTINGS,
    **{
        "train.steps": 2000,
        "train.steps_per_loop": 1,
        "train.log_every": 1,
        "train.checkpoint_every": 3,
        "train.eval_every": 2000,
    },
)


def stop_all(workers) -> None:
    for w in workers:
        if w.poll() is None:
            w.send_signal(signal.SIGCONT)
            w.kill()
            w.wait()


def assert_one_error_line(stderr: str) -> str:
    lines = error_lines(stderr)
    assert len(lines) == 1, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert stderr.rstrip().splitlines()[-1] == lines[0]  # nothing printed after it
    return lines[0]


@pytest.mark.slow
def test_a_worker_whose_peer_never_starts_waits_with_progress_then_exits_6(tmp_path):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    started = time.monotonic()
    worker = start_worker(
        0, cluster, str(tmp_path), TINY_MNIST_SETTINGS, "--config.runtime.startup_timeout=12"
    )
    try:
        _, stderr = worker.communicate(timeout=HARD_TIMEOUT)
    finally:
        stop_all([worker])
    seconds = time.monotonic() - started
    assert worker.returncode == 6, stderr[-3000:]
    peer = cluster["worker"][1]
    assert f"waiting for worker 1 at {peer} (10 s of 12)" in stderr.splitlines()
    line = assert_one_error_line(stderr)
    assert line == (
        f"error: worker 1 at {peer} did not join within runtime.startup_timeout=12 s; start every "
        "worker of TF_CONFIG (or raise runtime.startup_timeout), then rerun all workers."
    )
    assert seconds < 12 + 200  # the wait plus a (loaded machine's) start-up, not TF's 300-600 s


@pytest.mark.slow
@pytest.mark.parametrize("fault", [signal.SIGKILL, signal.SIGSTOP], ids=["kill_9", "sigstop"])
def test_a_lost_peer_is_one_line_naming_it_and_exit_6(tmp_path, fault):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    workdir = str(tmp_path / "run")
    workers = [start_worker(i, cluster, workdir, LONG_RUN) for i in range(2)]
    state = os.path.join(workdir, "checkpoints", "checkpoint")
    try:
        deadline = time.monotonic() + HARD_TIMEOUT
        while not os.path.exists(state):  # a checkpoint to name
            assert time.monotonic() < deadline and all(w.poll() is None for w in workers)
            time.sleep(0.1)
        workers[1].send_signal(fault)
        faulted = time.monotonic()
        _, stderr = workers[0].communicate(timeout=HARD_TIMEOUT)
        seconds = time.monotonic() - faulted
    finally:
        stop_all(workers)
    assert workers[0].returncode == 6, stderr[-3000:]
    line = assert_one_error_line(stderr)
    assert line.startswith(f"error: lost worker 1 at {cluster['worker'][1]} (")
    assert line.endswith("rerun all workers to resume.")
    latest = line.split("the last good checkpoint is ")[1].split(";")[0]
    assert os.path.basename(latest).startswith("ckpt-")
    assert os.path.exists(latest + ".index")
    assert seconds < 120, seconds  # measured 5 s (kill -9) and 12 s (SIGSTOP) on an idle machine


def _tf_config(monkeypatch, addresses, index=0) -> None:
    config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))


def test_wait_for_workers_reports_progress_then_raises_the_retryable_error(monkeypatch):
    from tf_bng.errors import ClusterError
    from tf_bng.training import runtime

    mine, absent = (f"127.0.0.1:{port}" for port in free_ports(2))
    _tf_config(monkeypatch, [mine, absent])
    stream = io.StringIO()
    started = time.monotonic()
    with pytest.raises(ClusterError) as error:
        runtime.wait_for_workers(1.6, every=0.5, stream=stream)
    assert 1.6 <= time.monotonic() - started < 10
    assert error.value.exit_code == 6
    assert str(error.value).startswith(f"worker 1 at {absent} did not join within")
    lines = stream.getvalue().splitlines()
    assert len(lines) >= 2, lines  # every 0.5 s
    pattern = re.compile(rf"waiting for worker 1 at {re.escape(absent)} \(\d s of 2\)")
    assert all(pattern.fullmatch(line) for line in lines), lines


def test_wait_for_workers_returns_once_every_peer_answers(monkeypatch):
    from tf_bng.training import runtime

    peer = socket.socket()
    peer.bind(("127.0.0.1", 0))
    peer.listen(8)
    try:
        (mine,) = free_ports(1)
        _tf_config(monkeypatch, [f"127.0.0.1:{mine}", f"127.0.0.1:{peer.getsockname()[1]}"])
        assert runtime.wait_for_workers(30, stream=io.StringIO()) < 5
    finally:
        peer.close()


def test_a_lost_peer_error_names_the_task_tensorflow_reported(monkeypatch):
    import tensorflow as tf

    from tf_bng.training import runtime

    addresses = [f"127.0.0.1:{port}" for port in free_ports(2)]
    _tf_config(monkeypatch, addresses)
    error = tf.errors.UnavailableError(
        None, None, "The following tasks are unhealthy: /job:worker/replica:0/task:1"
    )
    lost = runtime.lost_worker_error(None, error, "/w/checkpoints/ckpt-9")
    assert str(lost) == (
        f"lost worker 1 at {addresses[1]} (UnavailableError); the last good checkpoint is "
        "/w/checkpoints/ckpt-9; rerun all workers to resume."
    )
    assert lost.exit_code == 6
    # An internal error while every peer answers is no cluster fault.
    peer = socket.socket()
    peer.bind(("127.0.0.1", 0))
    peer.listen(8)
    try:
        _tf_config(monkeypatch, [addresses[0], f"127.0.0.1:{peer.getsockname()[1]}"])
        internal = tf.errors.InternalError(None, None, "a bug")
        assert runtime.lost_worker_error(None, internal, None) is None
    finally:
        peer.close()
