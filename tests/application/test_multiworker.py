"""Two worker processes (TF_CONFIG on 127.0.0.1, RING collectives) train like one process.

The workers run the real binary; each feeds half of every global batch (the
data pipeline shards by position inside the global batch), so the sum of
their gradients is the single-process gradient and the weights must agree.
Loopback only, free ports, hard timeouts.
"""

from __future__ import annotations

import os

import pytest
from helpers import checkpoint_values, free_ports, max_abs_diff, start_worker, tiny_mnist_config

from tf_bng.training.metrics_log import read_records
from tf_bng_trainers.experiment import Experiment as Trainer

pytestmark = pytest.mark.slow  # two worker processes train together

TIMEOUT_SECONDS = 180


def test_two_workers_train_together_and_match_one_process(tmp_path):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    workdir = str(tmp_path / "two_workers")
    workers = [start_worker(i, cluster, workdir) for i in range(2)]
    try:
        logs = [w.communicate(timeout=TIMEOUT_SECONDS)[1] for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
    for index, (worker, log) in enumerate(zip(workers, logs)):
        assert worker.returncode == 0, f"worker {index} failed:\n{log[-3000:]}"
        assert "Strategy CollectiveAllReduceStrategy: 2 replicas in sync" in log

    single_dir = str(tmp_path / "one_process")
    Trainer(tiny_mnist_config(), single_dir).run()

    assert max_abs_diff(checkpoint_values(workdir), checkpoint_values(single_dir)) <= 1e-5
    # Only the chief (worker 0) writes the shared outputs; worker 1's scratch copy is gone.
    assert [r["step"] for r in read_records(workdir, "train")] == [3, 6]
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".scratch_worker")]
    assert not [name for name in os.listdir(workdir) if name.startswith(".scratch_worker")]
