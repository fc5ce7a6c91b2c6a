"""AdaGradBNG against an independent float64 numpy version of the paper's Algorithm 2.

Per block i and step t: G = gradient of the block, g = G / ||G||_2,
s = sqrt(sum_{tau <= t} g_tau**2) per coordinate, x -= eta * ||G|| * g / (delta + s).
Excluded variables follow plain AdaGrad (the same formula with g = G and ||G|| = 1).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import initial_weights, make_data, max_abs_diff, textbook_train, train

import tf_bng

ETA = 0.125  # exact in float32: Keras keeps the learning rate in a float32 variable
DELTA = 1e-8
STEPS = 5


# -- the numpy reference --------------------------------------------------------------------


def mlp_gradients(params: dict, x: np.ndarray, y: np.ndarray) -> dict:
    """Backward pass of mean((tanh(x W1 + b1) W2 + b2 - y)**2), by hand."""
    h = np.tanh(x @ params["hidden/kernel"] + params["hidden/bias"])
    p = h @ params["out/kernel"] + params["out/bias"]
    dp = 2.0 * (p - y) / p.size
    dz = (dp @ params["out/kernel"].T) * (1.0 - h**2)
    return {
        "out/kernel": h.T @ dp,
        "out/bias": dp.sum(axis=0),
        "hidden/kernel": x.T @ dz,
        "hidden/bias": dz.sum(axis=0),
    }


def adagrad_bng_reference(params, x, y, block_of, excluded=(), steps=STEPS):
    """Algorithm 2 in float64; ``block_of`` maps a parameter name to its block key."""
    params = {k: v.astype(np.float64).copy() for k, v in params.items()}
    acc = {k: np.zeros_like(v) for k, v in params.items()}
    for _ in range(steps):
        grads = mlp_gradients(params, x, y)
        norms = {}
        for name, g in grads.items():
            if name not in excluded:
                norms[block_of(name)] = norms.get(block_of(name), 0.0) + np.sum(g**2)
        for name, grad in grads.items():
            n = 1.0 if name in excluded else np.sqrt(norms[block_of(name)])
            g = grad / n if n > 0 else np.zeros_like(grad)
            acc[name] += g**2
            params[name] -= ETA * n * g / (DELTA + np.sqrt(acc[name]))
    return params


# -- the Keras side -----------------------------------------------------------------------


def make_mlp() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((3,), dtype="float64"),
            keras.layers.Dense(4, activation="tanh", dtype="float64", name="hidden"),
            keras.layers.Dense(2, dtype="float64", name="out"),
        ],
        name="net",
    )


def params_of(model: keras.Model) -> dict:
    return {v.path.removeprefix("net/"): v.numpy() for v in model.trainable_variables}


def run_keras(model, optimizer, x, y, steps=STEPS):
    x, y = tf.constant(x), tf.constant(y)
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x) - y))
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)


def reference_problem():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(16, 3))
    y = rng.normal(size=(16, 2))
    keras.utils.set_random_seed(2)
    model = make_mlp()
    return model, x, y


BLOCKINGS = {
    "layer": ({"blocks": "layer"}, lambda name: name.split("/")[0], ()),
    "variable": ({"blocks": "variable"}, lambda name: name, ()),
    "layer_exclude_out_bias": (
        {"blocks": "layer", "exclude": ("out/bias",)},
        lambda name: name.split("/")[0],
        ("out/bias",),
    ),
}


@pytest.mark.parametrize("blocking", sorted(BLOCKINGS))
def test_matches_float64_reference(blocking):
    kwargs, block_of, excluded = BLOCKINGS[blocking]
    model, x, y = reference_problem()
    start = params_of(model)
    expected = adagrad_bng_reference(start, x, y, block_of, excluded)

    run_keras(model, tf_bng.AdaGradBNG(learning_rate=ETA, delta=DELTA, **kwargs), x, y)
    got = params_of(model)
    for name in expected:
        assert got[name].dtype == np.float64
        moved = np.linalg.norm(expected[name] - start[name])
        assert moved > 1e-3, name
        # float64 end to end: measured ~1e-15; a float32 shortcut anywhere gives ~1e-8.
        assert np.linalg.norm(got[name] - expected[name]) <= 1e-10 * moved, name


def test_blockings_really_differ():
    """Guard for the test above: layer, variable and excluded blocks give different results."""
    model, x, y = reference_problem()
    start = params_of(model)
    results = [adagrad_bng_reference(start, x, y, b, e) for _, b, e in BLOCKINGS.values()]
    for a, b in [(0, 1), (0, 2), (1, 2)]:
        assert max(np.max(np.abs(results[a][k] - results[b][k])) for k in start) > 1e-3


def test_zero_gradient_block_leaves_its_variables_unchanged():
    a = keras.Variable(np.array([1.0, -2.0, 3.0]), dtype="float32", name="a")
    b = keras.Variable(np.array([1.0, 1.0]), dtype="float32", name="b")
    optimizer = tf_bng.AdaGradBNG(learning_rate=ETA, blocks="variable")
    for _ in range(2):
        optimizer.apply([tf.zeros([3]), tf.constant([3.0, 4.0])], [a, b])
    np.testing.assert_array_equal(a.numpy(), [1.0, -2.0, 3.0])
    assert np.all(np.isfinite(b.numpy()))
    # b: g = [0.6, 0.8], s_t = sqrt(t) |g|, steps eta * 5 * g / (sqrt(t) |g|) = 5 eta / sqrt(t).
    expected_b = 1.0 - 5.0 * ETA * (1.0 + 1.0 / np.sqrt(2.0))
    np.testing.assert_allclose(b.numpy(), [expected_b] * 2, rtol=1e-5)


def test_config_round_trip():
    optimizer = tf_bng.AdaGradBNG(
        learning_rate=0.05,
        delta=1e-6,
        norm="l1",
        blocks="variable",
        exclude=("bias$",),
        initial_accumulator_value=0.1,
    )
    config = optimizer.get_config()
    clone = tf_bng.AdaGradBNG.from_config(config)
    assert clone.get_config() == config
    assert (config["delta"], config["norm"], config["blocks"], config["exclude"]) == (
        1e-6,
        "l1",
        "variable",
        ["bias$"],
    )
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, tf_bng.AdaGradBNG)
    assert restored.get_config() == config

    model, x, y = reference_problem()
    weights = model.get_weights()
    outcomes = []
    for opt in (optimizer, restored):
        model.set_weights(weights)
        run_keras(model, opt, x, y, steps=2)
        outcomes.append(model.get_weights())
    assert max_abs_diff(outcomes[0], outcomes[1]) == 0.0
    assert max_abs_diff(outcomes[0], weights) > 1e-3


def test_rejects_non_positive_delta():
    with pytest.raises(ValueError, match="delta must be > 0"):
        tf_bng.AdaGradBNG(delta=0.0)


def test_mirrored_matches_single_device(mirrored_strategy):
    """Both ways in: TrainStep (already-summed gradients) and a plain custom loop
    (per-replica gradients straight into ``apply``, which must sum them itself)."""
    weights, data = initial_weights(), make_data()

    def make_optimizer():
        return tf_bng.AdaGradBNG(learning_rate=0.05)

    single = train(tf.distribute.get_strategy(), weights, make_optimizer, "none", data)
    mirrored = train(mirrored_strategy, weights, make_optimizer, "none", data)
    assert max_abs_diff(weights, single.weights) > 1e-3
    assert max_abs_diff(mirrored.weights, single.weights) <= 2e-6

    plain_single = textbook_train(tf.distribute.get_strategy(), weights, make_optimizer, data)
    plain_mirrored = textbook_train(mirrored_strategy, weights, make_optimizer, data)
    assert max_abs_diff(plain_single, single.weights) <= 2e-6
    assert max_abs_diff(plain_mirrored, single.weights) <= 2e-6
