"""Resuming from a workdir reproduces an uninterrupted run; the export reloads and serves.

The resumed model is the seed's deep MLP (shrunk): BatchNorm moving statistics,
dropout masks and Adam's slots all have to come back exactly for the weights
to be identical.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from helpers import checkpoint_values

from tf_bng import data
from tf_bng.training.metrics_log import read_records
from tf_bng_configs import deep_mlp
from tf_bng_trainers.experiment import Experiment as Trainer

STEPS = 6


def tiny_deep_mlp(steps: int, **overrides):
    config = deep_mlp.get_config("depth=3,optimizer=adam,transform=ng")
    settings = {
        "data.limit": 120,
        "data.batch_size": 20,
        "model.width": 16,
        "train.steps": steps,
        "train.steps_per_loop": 2,
        "train.log_every": 2,
        "train.eval_every": STEPS,
        "train.checkpoint_every": STEPS // 2,
    }
    settings.update(overrides)
    config.update_from_flattened_dict(settings)
    return config


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    whole_dir = str(tmp_path_factory.mktemp("whole"))
    whole = Trainer(tiny_deep_mlp(STEPS), whole_dir)
    whole_results = whole.run()

    split_dir = str(tmp_path_factory.mktemp("split"))
    first_half = Trainer(tiny_deep_mlp(STEPS // 2), split_dir)
    first_half.run()
    resumed = Trainer(tiny_deep_mlp(STEPS, export=True), split_dir)
    resumed_results = resumed.run()
    return whole, whole_results, whole_dir, resumed, resumed_results, split_dir


@pytest.mark.slow  # trains or spawns: 41 s (make test-fast skips it)
def test_resume_gives_identical_weights_and_optimizer_state(runs):
    whole, whole_results, whole_dir, resumed, resumed_results, split_dir = runs
    assert resumed.step == whole.step == STEPS
    assert int(resumed.optimizer.iterations.numpy()) == STEPS
    whole_state, resumed_state = checkpoint_values(whole_dir), checkpoint_values(split_dir)
    assert sorted(whole_state) == sorted(resumed_state)
    # All model state is compared: weights, BN moving statistics, dropout RNG states.
    saved_model_state = [k for k in whole_state if k.startswith("model_variables/")]
    assert len(saved_model_state) == len(whole.model.variables) == 23
    for key in whole_state:
        np.testing.assert_array_equal(resumed_state[key], whole_state[key], err_msg=key)
    assert resumed_results["eval_loss"] == whole_results["eval_loss"]


def test_resumed_log_continues_where_the_first_half_stopped(runs):
    *_, split_dir = runs
    steps = [r["step"] for r in read_records(split_dir, "train")]
    assert steps == [2, 3, 4, 6]  # first half: every 2 steps and at its end (3); then 4, 6


def test_export_reloads_with_a_serving_signature_matching_the_model(runs):
    *_, resumed, _, split_dir = runs
    loaded = tf.saved_model.load(f"{split_dir}/export")
    serve = loaded.signatures["serving_default"]
    (spec,) = serve.structured_input_signature[1].values()
    assert spec.shape.as_list() == [None, 784] and spec.dtype == tf.float32
    x, _ = next(iter(data.build_dataset(resumed.config.data, split="eval", training=False, seed=0)))
    expected = resumed.model(x, training=False).numpy()
    np.testing.assert_allclose(serve(inputs=x)["outputs"].numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loaded.serve(x)["outputs"].numpy(), expected, rtol=1e-5, atol=1e-6)
