"""``transform.backward_scaling`` from a config.

It trains, logs log10 norms, resumes; bad combinations fail.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tf_bng.errors import ConfigError
from tf_bng.training.metrics_log import read_records
from tf_bng_configs import mnist_mlp
from tf_bng_trainers.experiment import Experiment as Trainer


def tiny_config(steps: int):
    config = mnist_mlp.get_config("depth=6,optimizer=adam,transform=ng")
    config.update_from_flattened_dict(
        {
            "data.limit": 40,
            "data.batch_size": 4,
            "train.steps": steps,
            "train.steps_per_loop": 2,
            "train.log_every": 2,
            "train.eval_every": 2,
            "train.checkpoint_every": 2,
            "transform.backward_scaling": True,
        }
    )
    return config


@pytest.mark.slow  # trains or spawns: 15 s (make test-fast skips it)
def test_a_backward_scaled_run_logs_true_log10_norms_and_resumes(tmp_path):
    workdir = str(tmp_path / "run")
    first = Trainer(tiny_config(2), workdir)
    assert first.train_step.backward_scaling is not None
    assert len(first.train_step.backward_scaling.points.layers) == 6  # one after each hidden layer
    first.run()
    (record,) = read_records(workdir, "train")
    logged = record["grad_log10_norm"]
    assert set(logged) == set(first.train_step.block_names)
    for name, value in logged.items():
        assert math.isfinite(value)
        norm = record["grad_norm"][name]
        assert norm > 0 and value == pytest.approx(math.log10(norm), abs=1e-4)

    resumed = Trainer(tiny_config(4), workdir)
    results = resumed.run()
    assert results["step"] == 4 and int(resumed.optimizer.iterations.numpy()) == 4
    assert np.isfinite(results["train_loss"])


@pytest.mark.parametrize("name", ["clip", "none", "global_clip"])
def test_backward_scaling_with_a_magnitude_transform_is_refused(name, tmp_path):
    # TrainStep validates it (the only check); the experiment names the config key.
    config = tiny_config(2)
    config.transform.name = name
    with pytest.raises(ConfigError, match=r"^transform\.backward_scaling: backward_scaling needs"):
        Trainer(config, str(tmp_path))
