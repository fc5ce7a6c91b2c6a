"""Gradient accumulation in TrainStep (issue 11): k micro-steps == one step on a k-times batch."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import (
    GLOBAL_BATCH,
    OPTIMIZERS,
    TRANSFORMS,
    build_step,
    distributed_batches,
    initial_weights,
    make_data,
    max_abs_diff,
    train,
)

import tf_bng

K = 3
UPDATES = 2


def accumulate(strategy, weights, make_optimizer, transform, data, k=K):
    step = build_step(strategy, weights, make_optimizer, transform, accumulation_steps=k)
    for batch in distributed_batches(strategy, data, GLOBAL_BATCH):
        step.step(batch)
    return step


@pytest.mark.parametrize("optimizer_name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("transform_name", sorted(TRANSFORMS))
@pytest.mark.slow  # trains or spawns: 43 s (make test-fast skips it)
def test_mirrored_micro_steps_equal_one_device_big_batch(
    mirrored_strategy, transform_name, optimizer_name
):
    weights, data = initial_weights(), make_data(GLOBAL_BATCH * K * UPDATES)
    transform, make_optimizer = TRANSFORMS[transform_name], OPTIMIZERS[optimizer_name]
    big = train(
        tf.distribute.get_strategy(),
        weights,
        make_optimizer,
        transform,
        data,
        global_batch_size=GLOBAL_BATCH * K,
    )
    micro = accumulate(mirrored_strategy, weights, make_optimizer, transform, data)
    assert int(micro.optimizer.iterations.numpy()) == UPDATES
    assert max_abs_diff(micro.model.get_weights(), big.weights) <= 2e-6
    np.testing.assert_allclose(micro.last_norms.numpy(), big.norms[-1], rtol=1e-5)


def test_loop_runs_updates_and_returns_the_last_applied_norms():
    weights, data = initial_weights(), make_data(GLOBAL_BATCH * K * UPDATES)
    strategy = tf.distribute.get_strategy()
    step = build_step(strategy, weights, OPTIMIZERS["adam"], TRANSFORMS["ng"], accumulation_steps=K)
    iterator = iter(distributed_batches(strategy, data, GLOBAL_BATCH))
    loss, norms = step.loop(iterator, tf.constant(UPDATES))[:2]
    assert int(step.optimizer.iterations.numpy()) == UPDATES
    stepped = accumulate(strategy, weights, OPTIMIZERS["adam"], TRANSFORMS["ng"], data)
    assert max_abs_diff(step.model.get_weights(), stepped.model.get_weights()) == 0.0
    np.testing.assert_allclose(norms.numpy(), stepped.last_norms.numpy(), rtol=1e-6)
    assert np.isfinite(float(loss))


def test_a_checkpoint_mid_window_resumes_bit_identically(tmp_path):
    weights, data = initial_weights(), make_data(GLOBAL_BATCH * 7)
    strategy = tf.distribute.get_strategy()
    batches = [b for b in distributed_batches(strategy, data, GLOBAL_BATCH)]

    def fresh():
        return build_step(
            strategy, weights, OPTIMIZERS["adam"], TRANSFORMS["ng_adap"], accumulation_steps=K
        )

    def checkpoint(step):
        return tf.train.Checkpoint(
            model=step.model, optimizer=step.optimizer, **step.checkpoint_items()
        )

    whole = fresh()
    for b in batches:
        whole.step(b)
    first = fresh()
    for b in batches[:4]:  # one update and one micro-batch into the next window
        first.step(b)
    path = checkpoint(first).write(str(tmp_path / "mid_window"))
    resumed = fresh()
    checkpoint(resumed).read(path).assert_consumed()
    assert int(resumed.accumulator.count.numpy()) == 1
    for b in batches[4:]:
        resumed.step(b)
    assert max_abs_diff(resumed.model.get_weights(), whole.model.get_weights()) == 0.0
    assert int(resumed.optimizer.iterations.numpy()) == 2


def test_a_nan_micro_batch_skips_the_window_and_restores_batchnorm():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(3),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(1),
        ]
    )
    step = tf_bng.TrainStep(
        model=model,
        loss="mse",
        optimizer=keras.optimizers.SGD(0.1),
        transform="ng",
        global_batch_size=4,
        accumulation_steps=K,
    )
    before = [w.numpy().copy() for w in model.weights]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 4)).astype(np.float32)
    y = np.zeros((4, 1), np.float32)
    bad = x.copy()
    bad[1, 2] = np.nan
    for inputs in (x, bad, x):
        step.step((x if inputs is x else bad, y))
    after = [w.numpy() for w in model.weights]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))  # weights and BN statistics
    assert step.bad_steps.counts() == (1, 1)
    assert int(step.optimizer.iterations.numpy()) == 0
    for _ in range(K):  # the next window applies
        step.step((x, y))
    assert int(step.optimizer.iterations.numpy()) == 1


def test_buffers_are_float32_under_mixed_float16():
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    finally:
        keras.config.set_dtype_policy(policy)
    step = tf_bng.TrainStep(
        model=model,
        loss="mse",
        optimizer=keras.optimizers.SGD(0.1),
        transform="ng",
        global_batch_size=4,
        accumulation_steps=2,
        loss_scale=tf_bng.step.DynamicLossScale(initial_scale=8.0),
    )
    assert all(b.dtype == tf.float32 for b in step.accumulator.buffers)
    x, y = np.ones((4, 4), np.float32), np.zeros((4, 2), np.float32)
    step.step((x, y))
    step.step((x, y))
    assert int(step.optimizer.iterations.numpy()) == 1


def test_keras_own_accumulation_is_refused_with_the_alternative():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match=r"TrainStep\(accumulation_steps=k\)"):
        tf_bng.TrainStep(
            model=model,
            loss="mse",
            global_batch_size=2,
            optimizer=keras.optimizers.SGD(0.1, gradient_accumulation_steps=2),
        )
    with pytest.raises(ValueError, match="gradient_accumulation_steps"):
        tf_bng.AdaGradBNG(gradient_accumulation_steps=2)
