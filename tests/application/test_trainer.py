"""The training loop.

What a run leaves in its workdir, strategies, optimizers, schedules, loss scaling.
"""

from __future__ import annotations

import glob
import json
import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import BATCH, LIMIT, checkpoint_values, max_abs_diff, model_values, tiny_mnist_config

from tf_bng import TrainStep, data
from tf_bng.step import DynamicLossScale
from tf_bng.training import runtime
from tf_bng.training.metrics_log import read_records
from tf_bng_configs import mnist_mlp
from tf_bng_trainers import optimizers
from tf_bng_trainers.experiment import Experiment as Trainer


def summary_tags(directory: str) -> set:
    tags = set()
    for path in glob.glob(os.path.join(directory, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(value.tag for value in event.summary.value)
    return tags


def reference_eval(model: keras.Model, config) -> tuple[float, float]:
    """float64 cross-entropy and accuracy of ``model`` over the whole eval split, in numpy."""
    xs, ys = zip(*data.build_dataset(config.data, split="eval", training=False, seed=0))
    x = np.concatenate([b.numpy() for b in xs])
    y = np.concatenate([b.numpy() for b in ys])
    logits = np.asarray(model(x, training=False), np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_probs[np.arange(len(y)), y].mean()
    return float(loss), float((logits.argmax(axis=1) == y).mean())


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("default_run"))
    trainer = Trainer(tiny_mnist_config(), workdir)
    results = trainer.run()
    return trainer, results, workdir


@pytest.mark.slow  # trains or spawns: 15 s (make test-fast skips it)
def test_run_leaves_config_metrics_summaries_and_checkpoint(default_run):
    trainer, results, workdir = default_run
    with open(os.path.join(workdir, "config.json")) as f:
        saved = json.load(f)
    assert saved["model"]["depth"] == 2 and saved["data"]["limit"] == LIMIT
    assert saved["transform"]["name"] == "ng"

    train = read_records(workdir, "train")
    assert [r["step"] for r in train] == [3, 6]
    spe = LIMIT // BATCH
    for r in train:
        assert {
            "step",
            "epoch",
            "split",
            "loss",
            "accuracy",
            "learning_rate",
            "steps_per_second",
            "grad_norm",
        } <= set(r)
        assert r["epoch"] == pytest.approx(r["step"] / spe)
        assert r["learning_rate"] == pytest.approx(1e-3)
        assert math.isfinite(r["loss"]) and 0.0 <= r["accuracy"] <= 1.0
    # The first window holds the tracing loop: its rate is left out (None); the next is measured.
    assert train[0]["steps_per_second"] is None and train[1]["steps_per_second"] > 0
    for r in train:
        assert list(r["grad_norm"]) == ["hidden1", "hidden2", "logits"]
        assert all(v > 0 for v in r["grad_norm"].values())
    (evaluation,) = read_records(workdir, "eval")
    assert evaluation["step"] == 6 and set(evaluation) >= {"loss", "accuracy", "epoch"}

    assert {
        "loss",
        "accuracy",
        "learning_rate",
        "steps_per_second",
        "grad_norm/hidden1",
        "grad_norm/logits",
    } <= summary_tags(os.path.join(workdir, "summaries", "train"))
    assert {"loss", "accuracy"} <= summary_tags(os.path.join(workdir, "summaries", "eval"))
    assert os.path.exists(os.path.join(workdir, "checkpoints", "ckpt-6.index"))
    assert results["step"] == 6 and results["train_loss"] == train[-1]["loss"]
    assert int(trainer.optimizer.iterations.numpy()) == 6


def test_eval_metrics_are_exact_over_a_partial_last_batch(default_run):
    trainer, results, _ = default_run
    loss, accuracy = reference_eval(trainer.model, trainer.config)
    assert results["eval_loss"] == pytest.approx(loss, rel=1e-5)
    assert results["eval_accuracy"] == pytest.approx(accuracy, abs=1e-6)


def test_mirrored_on_two_virtual_cpus_matches_default(default_run, tmp_path):
    default_trainer, default_results, default_dir = default_run
    config = tiny_mnist_config(**{"runtime.strategy": "mirrored", "runtime.virtual_cpus": 2})
    trainer = Trainer(config, str(tmp_path))
    results = trainer.run()
    assert trainer.strategy.num_replicas_in_sync == 2
    initial = Trainer(tiny_mnist_config(), str(tmp_path / "untrained")).model
    assert max_abs_diff(model_values(initial), model_values(default_trainer.model)) > 1e-3
    assert max_abs_diff(checkpoint_values(str(tmp_path)), checkpoint_values(default_dir)) <= 1e-5
    assert results["eval_loss"] == pytest.approx(default_results["eval_loss"], rel=1e-5)


def test_virtual_cpus_is_a_no_op_once_devices_exist():
    assert runtime.configure_virtual_cpus(2) == 2  # tests/conftest.py split the CPU already
    assert runtime.configure_virtual_cpus(0) is None
    with pytest.raises(
        RuntimeError, match="3 virtual CPUs asked but TensorFlow already initialized 2"
    ):
        runtime.configure_virtual_cpus(3)


def test_chief_is_worker_zero_or_the_chief_task(monkeypatch):
    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    for index, chief in ((0, True), (1, False)):
        monkeypatch.setenv(
            "TF_CONFIG",
            json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
        )
        assert runtime.is_chief() is chief and runtime.task_id() == index
    monkeypatch.setenv(
        "TF_CONFIG",
        json.dumps(
            {
                "cluster": dict(cluster, chief=["127.0.0.1:3"]),
                "task": {"type": "worker", "index": 0},
            }
        ),
    )
    assert not runtime.is_chief()


# -- optimizers and schedules ---------------------------------------------------------------


def _section(**values):
    config = mnist_mlp.get_config()
    config.unlock()
    for key, value in values.items():
        config.schedule[key] = value
    return config.schedule


def test_piecewise_boundaries_are_epochs():
    schedule = optimizers.build_schedule(
        _section(name="piecewise", boundaries=(8.0, 12.0), decay_rate=0.1),
        0.1,
        steps_per_epoch=10,
        total_steps=160,
    )
    expected = {0: 0.1, 80: 0.1, 81: 0.01, 120: 0.01, 121: 0.001, 159: 0.001}
    for step, lr in expected.items():
        assert float(schedule(step)) == pytest.approx(lr, rel=1e-6), step


def test_exponential_decays_by_rate_over_the_run_or_per_decay_epochs():
    over_run = optimizers.build_schedule(
        _section(name="exponential", decay_rate=0.001, decay_epochs=0.0),
        0.1,
        steps_per_epoch=10,
        total_steps=500,
    )
    per_5_epochs = optimizers.build_schedule(
        _section(name="exponential", decay_rate=0.5, decay_epochs=5.0),
        0.1,
        steps_per_epoch=10,
        total_steps=500,
    )
    for step in (0, 125, 250, 500):
        assert float(over_run(step)) == pytest.approx(0.1 * 0.001 ** (step / 500), rel=1e-5)
        assert float(per_5_epochs(step)) == pytest.approx(0.1 * 0.5 ** (step / 50), rel=1e-5)
    constant = optimizers.build_schedule(
        _section(name="constant"), 0.3, steps_per_epoch=1, total_steps=1
    )
    assert constant == 0.3


def _optimizer_section(**values):
    config = mnist_mlp.get_config()
    config.optimizer.update(values)
    return config


def test_optimizers_by_identifier_with_their_own_arguments():
    config = _optimizer_section(name="sgd", momentum=0.9, nesterov=True, weight_decay=1e-4)
    sgd = optimizers.build_optimizer(config.optimizer, learning_rate=0.1)
    assert isinstance(sgd, keras.optimizers.SGD)
    assert (sgd.momentum, sgd.nesterov, sgd.weight_decay) == (0.9, True, 1e-4)
    adam = optimizers.build_optimizer(
        _optimizer_section(name="adam", epsilon=1e-8).optimizer, learning_rate=1e-3
    )
    assert adam.epsilon == 1e-8 and adam.weight_decay is None
    for name, cls in (
        ("lamb", keras.optimizers.Lamb),
        ("lion", keras.optimizers.Lion),
        ("AdamW", keras.optimizers.AdamW),
    ):
        assert isinstance(
            optimizers.build_optimizer(_optimizer_section(name=name).optimizer, learning_rate=1e-3),
            cls,
        )
    config = _optimizer_section(name="adagrad_bng", delta=1e-6)
    config.transform.update(dict(norm="l1", blocks="variable"))
    bng = optimizers.build_optimizer(
        config.optimizer, learning_rate=0.01, transform=config.transform
    )
    assert bng.delta == 1e-6 and bng.get_config()["norm"] == "l1"
    assert bng.get_config()["blocks"] == "variable"


def test_optimizer_rejects_an_argument_it_cannot_take():
    with pytest.raises(ValueError, match="optimizer.momentum=0.9 is not an argument of Adam"):
        optimizers.build_optimizer(
            _optimizer_section(name="adam", momentum=0.9).optimizer, learning_rate=1e-3
        )
    with pytest.raises(ValueError, match="Unknown optimizer 'adamm'; valid: "):
        optimizers.build_optimizer(_optimizer_section(name="adamm").optimizer, learning_rate=1.0)


# -- loss scaling ---------------------------------------------------------------------------


def test_dynamic_loss_scale_halves_on_overflow_and_doubles_after_clean_steps():
    scale = DynamicLossScale(initial_scale=8.0, growth_interval=2, min_scale=2.0)
    flags = [True, True, True, False, False, False, True, True]
    # numpy reference of the rule: grow after `growth_interval` finite steps, halve on overflow
    expected, value, good = [], 8.0, 0
    for finite in flags:
        if finite:
            good += 1
            if good == 2:
                value, good = value * 2, 0
        else:
            value, good = max(value / 2, 2.0), 0
        expected.append(value)
    got = []
    for finite in flags:
        scale.update(tf.constant(finite))
        got.append(float(scale.scale.numpy()))
    assert got == expected


def _regressor():
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(1)]
    )
    return model


def _loss_scaled_run(strategy, weights, x, loss_scale: bool):
    with strategy.scope():
        model = _regressor()
        model.set_weights(weights)
        optimizer = keras.optimizers.Adam(0.1)
        scale = DynamicLossScale(initial_scale=2.0**10) if loss_scale else None
    step = TrainStep(
        model=model,
        loss="mse",
        optimizer=optimizer,
        transform="ng",
        global_batch_size=4,
        strategy=strategy,
        loss_scale=scale,
    )
    y = np.ones((4, 1), np.float32)
    dataset = tf.data.Dataset.from_tensors((x, y)).repeat(2)
    step.loop(iter(strategy.experimental_distribute_dataset(dataset)), tf.constant(2))
    return model, optimizer, scale


@pytest.mark.slow  # trains or spawns: 18 s (make test-fast skips it)
def test_loss_scaled_step_equals_plain_step_and_skips_non_finite(mirrored_strategy):
    keras.utils.set_random_seed(0)
    weights = _regressor().get_weights()
    x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    plain, _, _ = _loss_scaled_run(mirrored_strategy, weights, x, loss_scale=False)
    scaled, optimizer, scale = _loss_scaled_run(mirrored_strategy, weights, x, loss_scale=True)
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(weights, plain.get_weights())) > 1e-2
    for a, b in zip(plain.get_weights(), scaled.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert int(optimizer.iterations.numpy()) == 2 and float(scale.scale.numpy()) == 2.0**10

    x_bad = x.copy()
    x_bad[1, 0] = np.inf  # one replica's half of the batch overflows: every replica skips
    skipped, optimizer, scale = _loss_scaled_run(mirrored_strategy, weights, x_bad, loss_scale=True)
    for a, b in zip(weights, skipped.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert int(optimizer.iterations.numpy()) == 0
    assert float(scale.scale.numpy()) == 2.0**8  # halved twice


def test_mixed_float16_run_trains_with_loss_scale_in_checkpoint(tmp_path):
    config = tiny_mnist_config(
        **{
            "runtime.mixed_precision": "mixed_float16",
            "train.steps": 3,
            "train.eval_every": 3,
            "train.checkpoint_every": 3,
        }
    )
    trainer = Trainer(config, str(tmp_path))
    results = trainer.run()
    assert keras.config.dtype_policy().name == "float32"  # restored after the build
    assert trainer.model.layers[1].compute_dtype == "float16"
    assert trainer.model.layers[1].kernel.dtype == "float32"
    assert math.isfinite(results["train_loss"]) and math.isfinite(results["eval_loss"])
    reader = tf.train.load_checkpoint(str(tmp_path / "checkpoints"))
    assert any(k.startswith("loss_scale/scale") for k in reader.get_variable_to_shape_map())
