"""Non-finite steps are skipped (state untouched, counted), too many in a row stop the run,
and no checkpoint ever holds NaN/Inf."""

from __future__ import annotations

import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import checkpoint_values, install_digits, random_digits, tiny_config

from tf_bng import TrainStep
from tf_bng.errors import CheckpointError, TrainingDiverged
from tf_bng.training.checkpointing import Checkpointer
from tf_bng.training.metrics_log import read_records
from tf_bng_trainers.experiment import Experiment as Trainer


def _per_replica_state(strategy, model, optimizer) -> list:
    """Every value of every model and optimizer variable, on every replica."""
    values = []
    for variable in list(model.variables) + list(optimizer.variables):
        value = getattr(variable, "value", variable)
        values += [v.numpy() for v in strategy.experimental_local_results(value)]
    return values


def _distributed(strategy, x, y):
    dataset = tf.data.Dataset.from_tensors((x, y))
    return next(iter(strategy.experimental_distribute_dataset(dataset)))


def test_non_finite_step_is_skipped_on_every_replica(mirrored_strategy):
    strategy = mirrored_strategy
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = keras.Sequential(
            [
                keras.Input((3,)),
                keras.layers.Dense(4),
                keras.layers.BatchNormalization(),
                keras.layers.Dense(2),
            ]
        )
        optimizer = keras.optimizers.Adam(0.1)
    accuracy = keras.metrics.SparseCategoricalAccuracy()
    step = TrainStep(
        model=model,
        loss="sparse_categorical_crossentropy",
        optimizer=optimizer,
        transform="ng",
        global_batch_size=4,
        strategy=strategy,
        metrics=[accuracy],
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 3)).astype(np.float32)
    y = np.array([0, 1, 1, 0], np.int32)

    step.step(_distributed(strategy, x, y))  # a good step: Adam's slots become non-zero
    before = _per_replica_state(strategy, model, optimizer)
    assert int(optimizer.iterations.numpy()) == 1 and step.bad_steps.counts() == (0, 0)

    x_bad = x.copy()
    x_bad[3, 0] = np.nan  # only the second replica's half of the batch is bad
    output = step.step(_distributed(strategy, x_bad, y))
    assert math.isnan(float(output.loss)) and not bool(output.applied)
    after = _per_replica_state(strategy, model, optimizer)
    assert len(after) == len(before) > 2 * len(model.variables)  # both replicas, slots included
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)  # weights, BN statistics, Adam slots, iterations
    assert step.bad_steps.counts() == (1, 1)
    assert int(output.losses_counted) == 0 and float(output.loss_total) == 0.0  # not averaged in
    assert (int(output.bad_steps), int(output.bad_steps_in_a_row)) == (1, 1)
    assert float(accuracy.count.numpy()) == 4.0  # metrics saw the good batch only

    step.step(_distributed(strategy, x, y))
    assert int(optimizer.iterations.numpy()) == 2 and step.bad_steps.counts() == (1, 0)
    moved = _per_replica_state(strategy, model, optimizer)
    assert any(not np.array_equal(a, b) for a, b in zip(after, moved))


@pytest.mark.slow  # trains or spawns: 16 s (make test-fast skips it)
def test_run_stops_after_max_bad_steps_with_last_good_checkpoint_intact(tmp_path, monkeypatch):
    workdir = str(tmp_path)
    clean = random_digits(200), random_digits(40, seed=1)
    install_digits(monkeypatch, *clean)
    good = Trainer(tiny_config(**{"train.steps": 4}), workdir)
    good.run()
    saved = checkpoint_values(workdir)
    good_weights = {v.path: v.numpy() for v in good.model.variables if v.dtype == "float32"}

    x, y = random_digits(200)
    x[20:] = np.nan  # the first batch (checked before training) is clean; the stream is not
    install_digits(monkeypatch, (x, y), clean[1])
    config = tiny_config(**{"train.steps": 40, "train.max_bad_steps": 2, "train.eval_every": 40})
    trainer = Trainer(config, workdir)
    with pytest.raises(TrainingDiverged) as error:
        trainer.run()
    message = str(error.value)
    assert "\n" not in message and "2 steps in a row (up to step 6)" in message
    assert "ckpt-4" in message and "train.max_bad_steps=2" in message

    assert trainer.checkpointer.latest().endswith("ckpt-4")
    now = checkpoint_values(workdir)
    assert sorted(now) == sorted(saved)
    for key in saved:
        np.testing.assert_array_equal(now[key], saved[key], err_msg=key)
    # In memory too: nothing moved, BatchNorm statistics of the NaN batches were put back.
    for v in trainer.model.variables:
        if v.path in good_weights:
            np.testing.assert_array_equal(v.numpy(), good_weights[v.path], err_msg=v.path)
    assert int(trainer.optimizer.iterations.numpy()) == 4
    last = read_records(workdir, "train")[-1]
    assert last["step"] == 6 and last["bad_steps"] == 2 and last["loss"] is None


def test_checkpoint_holding_nan_or_inf_is_never_written(tmp_path):
    directory = str(tmp_path / "checkpoints")
    weights = tf.Variable([1.0, 2.0], name="weights")
    counter = tf.Variable(3, dtype=tf.int64, name="counter")
    checkpointer = Checkpointer(directory, weights=weights, counter=counter)
    first = checkpointer.save(1)
    for bad in (np.nan, np.inf):
        weights.assign([bad, 1.0])
        with pytest.raises(CheckpointError, match="Not saving step 2: weights:0 hold NaN or Inf"):
            checkpointer.save(2)
    assert not [name for name in os.listdir(directory) if name.startswith("ckpt-2")]
    assert checkpointer.latest() == first
    np.testing.assert_array_equal(
        tf.train.load_checkpoint(first).get_tensor("weights/.ATTRIBUTES/VARIABLE_VALUE"), [1.0, 2.0]
    )
