"""UpdateTrustRatioOptimizer: the trust ratio on the inner optimizer's update.

Checked against Keras's own ``Lamb`` (a peer), numpy references of Adam + ratio
(with decoupled decay and a schedule) and of TensorFlow Model Garden's
``LARS(classic_momentum=False)`` (``official/modeling/optimization/lars.py``:
``v = m * v + g``, ``update = v`` or ``m * v + g`` (Nesterov), ratio
``eeta * ||w|| / ||update||`` (1 where a norm is 0), ``w -= ratio * lr * update``),
over the float range, under MirroredStrategy and through a ``.keras`` file.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import initial_weights, make_data, max_abs_diff, train

from tf_bng import gradient_transforms as gt
from tf_bng import selectors
from tf_bng.wrappers import UpdateTrustRatioOptimizer

RNG = np.random.default_rng(11)


def _model(seed=0, scale=1.0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(5, name="body"), keras.layers.Dense(3, name="head")],
        name="net",
    )
    if scale != 1.0:
        model.set_weights([w * scale for w in model.get_weights()])
    return model


def _grads(model, x, y):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(x) - y))
    return tape.gradient(loss, model.trainable_variables)


def _batches(steps):
    return [
        (RNG.normal(size=(8, 4)).astype("float32"), RNG.normal(size=(8, 3)).astype("float32"))
        for _ in range(steps)
    ]


def _ratio(w, update, alpha):
    w_norm, u_norm = np.linalg.norm(w), np.linalg.norm(update)
    return alpha * w_norm / u_norm if w_norm > 0 and u_norm > 0 else 1.0


def test_adam_inside_is_keras_lamb():
    """A peer: Keras's Lamb is Adam's direction with this ratio (epsilon ~0: Keras places it
    outside Adam's bias correction and inside Lamb's)."""
    ours, theirs = _model(), _model()
    opt_ours = UpdateTrustRatioOptimizer(keras.optimizers.Adam(1e-2, epsilon=1e-12))
    opt_theirs = keras.optimizers.Lamb(1e-2, epsilon=1e-12)
    steps = {
        id(opt_ours): tf.function(lambda g: opt_ours.apply(g, ours.trainable_variables)),
        id(opt_theirs): tf.function(lambda g: opt_theirs.apply(g, theirs.trainable_variables)),
    }
    start = [w.copy() for w in ours.get_weights()]
    for x, y in _batches(6):
        for model, opt in ((ours, opt_ours), (theirs, opt_theirs)):
            steps[id(opt)](_grads(model, x, y))
    assert max_abs_diff(start, ours.get_weights()) > 1e-2, "the run must move"
    assert max_abs_diff(ours.get_weights(), theirs.get_weights()) < 1e-6
    assert int(opt_ours.iterations) == 6


def _adam_reference(weights, grads_per_step, *, lrs, wd, alpha, beta_1=0.9, beta_2=0.999, eps=1e-7):
    """Keras Adam (decoupled decay first) per variable in float64, then the ratio on its step."""
    w = [x.astype(np.float64) for x in weights]
    m = [np.zeros_like(x) for x in w]
    v = [np.zeros_like(x) for x in w]
    for t, (grads, lr) in enumerate(zip(grads_per_step, lrs), start=1):
        for k, g in enumerate(grads):
            g = g.astype(np.float64)
            decayed = w[k] - lr * wd * w[k]
            m[k] = beta_1 * m[k] + (1 - beta_1) * g
            v[k] = beta_2 * v[k] + (1 - beta_2) * g * g
            step_size = lr * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
            delta = decayed - step_size * m[k] / (np.sqrt(v[k]) + eps) - w[k]
            w[k] = w[k] + lr * _ratio(w[k], delta / lr, alpha) * (delta / lr)
    return w


def test_adam_with_decoupled_decay_and_a_schedule_matches_numpy():
    """The step is rescaled with this step's rate (read before ``iterations`` advances)."""
    model = _model()
    variables = model.trainable_variables
    schedule = keras.optimizers.schedules.ExponentialDecay(0.05, decay_steps=1, decay_rate=0.5)
    opt = UpdateTrustRatioOptimizer(keras.optimizers.Adam(schedule, weight_decay=0.1), alpha=0.3)
    step = tf.function(lambda g: opt.apply(g, variables))
    start, grads_per_step = model.get_weights(), []
    for x, y in _batches(4):
        grads = _grads(model, x, y)
        grads_per_step.append([g.numpy() for g in grads])
        step(grads)
    lrs = [0.05 * 0.5**t for t in range(4)]
    expected = _adam_reference(start, grads_per_step, lrs=lrs, wd=0.1, alpha=0.3)
    assert max_abs_diff(expected, model.get_weights()) < 2e-6
    assert max_abs_diff(start, model.get_weights()) > 1e-3


def _mg_lars_update_reference(weights, grads_per_step, *, lr, momentum, nesterov, wd, eeta, skip):
    """Model Garden's LARS, classic_momentum=False, per variable in float64."""
    w = [x.astype(np.float64) for x in weights]
    vel = [np.zeros_like(x) for x in w]
    for grads in grads_per_step:
        for k, g in enumerate(grads):
            g = g.astype(np.float64) + (0.0 if k in skip else wd * w[k])
            vel[k] = momentum * vel[k] + g
            update = momentum * vel[k] + g if nesterov else vel[k]
            ratio = 1.0 if k in skip else _ratio(w[k], update, eeta)
            w[k] = w[k] - ratio * lr * update
    return w


@pytest.mark.parametrize(
    "nesterov, scale", [(False, 1.0), (True, 1.0), (True, 1e-30), (False, 1e30)]
)
def test_sgd_momentum_inside_is_model_gardens_lars_classic_momentum_false(nesterov, scale):
    """Coupled decay in the gradient, SGD momentum, the ratio on the update, biases excluded;
    weights of 1e-30 and 1e30 (their gradients scale with them) give the same relative steps."""
    model = _model(scale=scale)
    variables = model.trainable_variables
    decay = gt.masked(selectors.path("kernel"), gt.add_decayed_weights(1e-2))
    inner = keras.optimizers.SGD(0.1, momentum=0.9, nesterov=nesterov)
    opt = UpdateTrustRatioOptimizer(inner, alpha=0.05, exclude=["bias"])
    step = tf.function(lambda g: opt.apply(decay.apply(g, variables).grads, variables))
    start, grads_per_step = model.get_weights(), []
    for x, y in _batches(4):
        grads = [g * scale for g in _grads(_model(seed=1), x, y)]  # gradients of the weights' size
        grads_per_step.append([g.numpy() for g in grads])
        step(grads)
    skip = [k for k, v in enumerate(variables) if v.path.endswith("bias")]
    assert skip == [1, 3]
    expected = _mg_lars_update_reference(
        start,
        grads_per_step,
        lr=0.1,
        momentum=0.9,
        nesterov=nesterov,
        wd=1e-2,
        eeta=0.05,
        skip=skip,
    )
    got = model.get_weights()
    assert all(np.all(np.isfinite(g)) for g in got)
    assert max_abs_diff([e / scale for e in expected], [g / scale for g in got]) < 2e-6
    assert max_abs_diff([s / scale for s in start], [g / scale for g in got]) > 1e-3


def _float16_model():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(5, dtype="float16"),
            keras.layers.Dense(3, dtype="float16"),
        ]
    )


@pytest.mark.parametrize("lr", [0.1, 1e-8])
def test_float16_weights_follow_the_reference_and_a_tiny_rate_stays_finite(lr):
    """The ratio is computed in float32: a float16 lr of 1e-8 would be 0 (0 / 0 = NaN)."""
    model = _float16_model()
    variables = model.trainable_variables
    assert all(v.dtype == "float16" for v in variables)
    opt = UpdateTrustRatioOptimizer(keras.optimizers.SGD(lr, momentum=0.9), alpha=0.05)
    step = tf.function(lambda g: opt.apply(g, variables))
    start, grads_per_step = model.get_weights(), []
    for x, y in _batches(3):
        grads = _grads(model, x.astype("float16"), y.astype("float16"))
        grads_per_step.append([g.numpy() for g in grads])
        step(grads)
    got = model.get_weights()
    assert all(np.all(np.isfinite(w)) for w in got)
    expected = _mg_lars_update_reference(
        start, grads_per_step, lr=lr, momentum=0.9, nesterov=False, wd=0.0, eeta=0.05, skip=[]
    )
    scale = max(float(np.abs(w).max()) for w in start)
    assert max_abs_diff(expected, got) <= 2e-3 * scale  # float16's own rounding of w
    if lr == 0.1:
        assert max_abs_diff(start, got) > 1e-2


def test_a_callable_blocks_trains_but_cannot_be_saved():
    model = _model()
    opt = UpdateTrustRatioOptimizer(keras.optimizers.SGD(0.1), blocks=lambda v: "all")
    x, y = _batches(1)[0]
    opt.apply(_grads(model, x, y), model.trainable_variables)
    with pytest.raises(ValueError, match="callable `blocks` cannot be serialized"):
        opt.get_config()


def test_zero_weights_and_excluded_variables_keep_the_inner_step():
    """Ratio 1 where ||w|| is 0 (a fresh bias) and on excluded paths: the plain inner step."""
    wrapped_model, plain_model = _model(), _model()
    wrapped = UpdateTrustRatioOptimizer(keras.optimizers.SGD(0.1), alpha=0.01, exclude=["head"])
    plain = keras.optimizers.SGD(0.1)
    x, y = _batches(1)[0]
    grads = _grads(wrapped_model, x, y)
    wrapped.apply(grads, wrapped_model.trainable_variables)
    plain.apply(grads, plain_model.trainable_variables)
    ours, theirs = wrapped_model.trainable_variables, plain_model.trainable_variables
    for k in (1, 2, 3):  # body bias (zero before the step), head kernel and bias (excluded)
        np.testing.assert_allclose(ours[k].numpy(), theirs[k].numpy(), rtol=1e-6, atol=1e-9)
    assert np.abs(ours[0].numpy() - theirs[0].numpy()).max() > 1e-3  # the body kernel is rescaled


@pytest.mark.slow  # traces a two-replica TrainStep: ~30 s (make test-fast skips it)
def test_mirrored_matches_single_device(mirrored_strategy):
    """The wrapper inside a TrainStep: two replicas equal one device on the same global batch."""
    weights, data = initial_weights(), make_data()

    def make_optimizer():
        return UpdateTrustRatioOptimizer(keras.optimizers.Adam(1e-2), alpha=0.5)

    single = train(tf.distribute.get_strategy(), weights, make_optimizer, "none", data)
    mirrored = train(mirrored_strategy, weights, make_optimizer, "none", data)
    assert max_abs_diff(weights, single.weights) > 1e-3
    assert max_abs_diff(mirrored.weights, single.weights) <= 2e-6
    copies = [
        [c.numpy() for c in mirrored_strategy.experimental_local_results(v.value)]
        for v in mirrored.model.trainable_variables
    ]
    assert all(np.array_equal(c[0], c[1]) for c in copies)


def test_a_keras_file_restores_it_and_training_continues_equal(tmp_path):
    model = _model()
    opt = UpdateTrustRatioOptimizer(keras.optimizers.Adam(1e-2), alpha=0.5, exclude=["bias"])
    model.compile(opt, "mse")
    x, y = _batches(1)[0]
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.optimizer, UpdateTrustRatioOptimizer)
    assert loaded.optimizer.get_config() == opt.get_config()
    assert [v.numpy().tolist() for v in loaded.optimizer.variables] == [
        v.numpy().tolist() for v in opt.variables
    ]
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    loaded.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    assert max_abs_diff(model.get_weights(), loaded.get_weights()) == 0.0


def test_bad_arguments_name_what_is_wrong():
    adam = keras.optimizers.Adam
    with pytest.raises(TypeError, match="Keras 3 optimizer instance"):
        UpdateTrustRatioOptimizer("adam")
    with pytest.raises(ValueError, match="use_ema"):
        UpdateTrustRatioOptimizer(adam(use_ema=True))
    with pytest.raises(ValueError, match="learning_rate.*belongs to that one"):
        UpdateTrustRatioOptimizer(adam(), learning_rate=0.1)
    with pytest.raises(ValueError, match="alpha must be > 0"):
        UpdateTrustRatioOptimizer(adam(), alpha=0.0)
    with pytest.raises(ValueError, match="variable"):
        UpdateTrustRatioOptimizer(adam(), blocks="layers")
