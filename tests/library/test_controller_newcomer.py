"""Issue 22: the Controller on finite data, a nested log dir, a rerun; EvalStep's tasks."""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_bng
from tf_bng.errors import DataError
from tf_bng.step import EvalStep
from tf_bng.training import Checkpointer, Controller, MetricsLog, read_records


def _run(workdir, total_steps, repeat, batches=4):
    strategy = tf.distribute.get_strategy()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="out")])
    optimizer = keras.optimizers.SGD(0.1)
    step = tf_bng.TrainStep(
        model=model,
        optimizer=optimizer,
        strategy=strategy,
        global_batch_size=4,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        transform=tf_bng.TransformConfig(transform="ng"),
    )
    x = np.random.RandomState(0).rand(4 * batches, 4).astype(np.float32)
    y = np.arange(4 * batches) % 3
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    if repeat:
        dataset = dataset.repeat()
    counter = tf.Variable(0, dtype=tf.int64)
    controller = Controller(
        train_step=step,
        train_data=lambda start: iter(
            strategy.experimental_distribute_dataset(dataset.skip(start))
        ),
        total_steps=total_steps,
        step_counter=counter,
        steps_per_loop=2,
        log_every=2,
        checkpoint_every=100,
        evaluate=lambda: {"loss": 1.0},
        checkpointer=Checkpointer(
            os.path.join(workdir, "checkpoints"),
            model=model,
            optimizer=optimizer,
            step=counter,
            **step.checkpoint_items(),
        ),
        log=MetricsLog(os.path.join(workdir, "nested", "run"), block_names=step.block_names),
    )
    return controller


def test_finite_data_ends_with_a_checkpoint_and_one_clear_error(tmp_path):
    controller = _run(str(tmp_path), total_steps=10, repeat=False)
    with pytest.raises(DataError, match=r"ran out at step 4 of 10.*checkpoint saved.*repeat"):
        controller.run()
    assert controller.checkpointer.latest() is not None
    assert os.path.exists(tmp_path / "nested" / "run" / "metrics.jsonl")


def test_data_ending_inside_an_inner_loop_counts_the_steps_it_took(tmp_path):
    # 5 batches, 2 steps per loop: the third loop takes step 5, then the data ends.
    controller = _run(str(tmp_path), total_steps=10, repeat=False, batches=5)
    with pytest.raises(DataError, match=r"ran out at step 5 of 10"):
        controller.run()
    assert controller.checkpointer.latest().endswith("ckpt-5")
    assert int(controller.train_step.optimizer.iterations.numpy()) == 5


def test_rerunning_a_finished_run_adds_nothing(tmp_path):
    _run(str(tmp_path), total_steps=4, repeat=True).run()
    logdir = str(tmp_path / "nested" / "run")
    records = read_records(logdir)
    events = sorted(os.listdir(os.path.join(logdir, "summaries", "eval")))
    assert [r["split"] for r in records].count("eval") == 1
    result = _run(str(tmp_path), total_steps=4, repeat=True).run()
    assert result["step"] == 4
    assert read_records(logdir) == records
    assert sorted(os.listdir(os.path.join(logdir, "summaries", "eval"))) == events


def test_first_progress_record_does_not_count_tracing(tmp_path):
    _run(str(tmp_path), total_steps=4, repeat=True).run()
    train = read_records(str(tmp_path / "nested" / "run"), "train")
    assert train[0]["steps_per_second"] is None  # only the tracing loop: no rate
    assert train[1]["steps_per_second"] > 0


def test_eval_step_names_the_valid_tasks():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    step = tf_bng.TrainStep(
        model=model,
        optimizer=keras.optimizers.SGD(0.1),
        strategy=tf.distribute.get_strategy(),
        global_batch_size=4,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    with pytest.raises(ValueError, match="classification, language_model, quadratic"):
        EvalStep(step, task="classifier")
