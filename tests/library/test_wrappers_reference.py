"""One optimizer step of each wrapper against a float64 numpy reference, plus the API rules."""

from __future__ import annotations

import keras
import numpy as np
import numpy_reference as ref
import pytest
import tensorflow as tf

import tf_bng
from tf_bng.wrappers import AdaptiveNormalizedOptimizer, ClippedOptimizer, NormalizedOptimizer

# ---- the float64 reference (tests/numpy_reference.py, written from the spec) --------

NORMS = ("l1", "l2", "max", "std", "avg_l1_l2")
# Variables of the tiny model, in order: dense/kernel, dense/bias, dense_1/kernel, dense_1/bias.
BLOCK_INDICES = {
    "layer": [[0, 1], [2, 3]],
    "variable": [[0], [1], [2], [3]],
    "global": [[0, 1, 2, 3]],
}


def reference_grads(kind, grads, weights, blocks, norm, *, clipnorm=1.0):
    return ref.transform(
        grads, weights, BLOCK_INDICES[blocks], transform=kind, norm=norm, threshold=clipnorm
    )


def clip_between_blocks(grads, blocks, norm):
    """A clipnorm that clips the large blocks and leaves the small ones alone."""
    norms = [ref.block_norm(norm, [grads[i] for i in ix]) for ix in BLOCK_INDICES[blocks]]
    lo, hi = min(norms), max(norms)
    return float(np.sqrt(lo * hi)) if hi > 4 * lo else 0.5 * hi


# ---- fixtures ----------------------------------------------------------------------------


def tiny_model(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)])
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.weights])
    return model


def tiny_grads(model, seed=1):
    """Gradients of very different sizes: the first layer's small, the second's large."""
    rng = np.random.default_rng(seed)
    scales = [0.01, 0.02, 10.0, 5.0]
    return [(s * rng.normal(size=w.shape)).astype("float32") for s, w in zip(scales, model.weights)]


def apply_once(optimizer, model, grads):
    w0 = [w.numpy().astype(np.float64) for w in model.weights]
    optimizer.apply([tf.constant(g) for g in grads], model.trainable_variables)
    return w0, [w.numpy().astype(np.float64) for w in model.weights]


WRAPPERS = ["ng", "clip", "ng_adap"]


def make_wrapper(kind, inner, norm, blocks, clipnorm=1.0, **kw):
    if kind == "ng":
        return NormalizedOptimizer(inner, norm, blocks=blocks, **kw)
    if kind == "clip":
        return ClippedOptimizer(inner, norm, clipnorm=clipnorm, blocks=blocks, **kw)
    return AdaptiveNormalizedOptimizer(inner, 0.02, norm, blocks=blocks, **kw)


# ---- one step against the reference -------------------------------------------------


@pytest.mark.parametrize("blocks", sorted(BLOCK_INDICES))
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("kind", WRAPPERS)
def test_one_sgd_step_matches_numpy(kind, norm, blocks):
    model = tiny_model()
    grads = tiny_grads(model)
    clipnorm = clip_between_blocks(grads, blocks, norm)
    lr = 0.1
    opt = make_wrapper(kind, keras.optimizers.SGD(lr), norm, blocks, clipnorm=clipnorm)
    w0, w1 = apply_once(opt, model, grads)
    expected = reference_grads(kind, grads, w0, blocks, norm, clipnorm=clipnorm)
    for before, after, g in zip(w0, w1, expected):
        np.testing.assert_allclose(after, before - lr * g, rtol=2e-5, atol=2e-6)
    if kind == "clip" and blocks != "global":
        # The clipnorm sits between the block norms: some blocks pass unchanged.
        moved = [np.allclose(b - a, lr * g, rtol=1e-3, atol=0) for a, b, g in zip(w1, w0, grads)]
        assert any(moved) and not all(moved)


def test_momentum_state_is_the_inner_optimizers():
    """Two steps of NG + SGD momentum equal the numpy momentum recursion on normalized grads."""
    model = tiny_model()
    lr, mu = 0.1, 0.9
    opt = NormalizedOptimizer(keras.optimizers.SGD(lr, momentum=mu), "l2")
    w = [v.numpy().astype(np.float64) for v in model.weights]
    velocity = [np.zeros_like(v) for v in w]
    for step in range(2):
        grads = tiny_grads(model, seed=10 + step)
        opt.apply([tf.constant(g) for g in grads], model.trainable_variables)
        normalized = reference_grads("ng", grads, w, "layer", "l2")
        velocity = [mu * v - lr * g for v, g in zip(velocity, normalized)]
        w = [a + v for a, v in zip(w, velocity)]
    for a, b in zip(model.weights, w):
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-5, atol=1e-6)
    assert int(opt.iterations) == 2


def test_excluded_variables_keep_their_raw_gradient():
    model = tiny_model()
    grads = tiny_grads(model)
    opt = NormalizedOptimizer(keras.optimizers.SGD(1.0), "l2", exclude=("bias",))
    w0, w1 = apply_once(opt, model, grads)
    for i in (1, 3):  # biases: raw step
        np.testing.assert_allclose(w0[i] - w1[i], grads[i], rtol=1e-5, atol=1e-6)
    for i in (0, 2):  # kernels: alone in their layer block, unit norm
        np.testing.assert_allclose(np.linalg.norm(w0[i] - w1[i]), 1.0, rtol=1e-5)
    part = opt.partition(model.trainable_variables)
    assert part.excluded == (1, 3) and part.blocks == ((0,), (2,))


def test_default_blocks_are_layers():
    model = tiny_model()
    opt = NormalizedOptimizer(keras.optimizers.SGD(0.1))
    assert opt.blocks == "layer"
    assert opt.partition(model.trainable_variables).blocks == ((0, 1), (2, 3))


def test_adaptive_leaves_zero_weight_blocks_raw():
    """A zero-initialized bias has ||x|| = 0: NGadap would freeze it, so it keeps G."""
    model = tiny_model()
    model.layers[0].bias.assign(np.zeros(3, "float32"))
    grads = tiny_grads(model)
    opt = AdaptiveNormalizedOptimizer(keras.optimizers.SGD(1.0), blocks="variable")
    w0, w1 = apply_once(opt, model, grads)
    np.testing.assert_allclose(w0[1] - w1[1], grads[1], rtol=1e-5, atol=1e-6)
    expected_kernel_step = 0.02 * np.linalg.norm(w0[0])
    np.testing.assert_allclose(np.linalg.norm(w0[0] - w1[0]), expected_kernel_step, rtol=1e-5)


@pytest.mark.filterwarnings("ignore:Gradients do not exist")
def test_none_gradient_is_skipped():
    model = tiny_model()
    grads = tiny_grads(model)
    opt = NormalizedOptimizer(keras.optimizers.SGD(1.0), blocks="variable")
    w0 = [w.numpy() for w in model.weights]
    opt.apply([None] + [tf.constant(g) for g in grads[1:]], model.trainable_variables)
    np.testing.assert_array_equal(model.weights[0].numpy(), w0[0])
    np.testing.assert_allclose(np.linalg.norm(w0[2] - model.weights[2].numpy()), 1.0, rtol=1e-5)


# ---- constructor rules --------------------------------------------------------------------

BASE_ARGS = {
    "learning_rate": 0.1,
    "weight_decay": 0.01,
    "clipnorm": 1.0,
    "clipvalue": 1.0,
    "global_clipnorm": 1.0,
    "use_ema": True,
    "ema_momentum": 0.9,
    "ema_overwrite_frequency": 2,
    "loss_scale_factor": 128.0,
    "gradient_accumulation_steps": 2,
}


@pytest.mark.parametrize("arg", sorted(BASE_ARGS))
def test_base_optimizer_arguments_are_rejected(arg):
    with pytest.raises(ValueError, match=f"`{arg}`.*inner optimizer"):
        NormalizedOptimizer(keras.optimizers.SGD(0.1), **{arg: BASE_ARGS[arg]})


def test_clipped_owns_clipnorm_but_not_global_clipnorm():
    assert ClippedOptimizer(keras.optimizers.SGD(0.1), clipnorm=0.3).clip_threshold == 0.3
    with pytest.raises(ValueError, match="global_clipnorm"):
        ClippedOptimizer(keras.optimizers.SGD(0.1), global_clipnorm=0.3)


@pytest.mark.parametrize(
    "inner, message",
    [
        ("sgd", "Keras 3 optimizer instance"),
        (keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1)), "other way round"),
        (keras.optimizers.SGD(0.1, loss_scale_factor=8.0), "loss_scale_factor"),
        (keras.optimizers.SGD(0.1, gradient_accumulation_steps=2), "accumulates"),
    ],
)
def test_bad_inner_optimizers_are_rejected(inner, message):
    with pytest.raises((TypeError, ValueError), match=message):
        NormalizedOptimizer(inner)


def test_unknown_arguments_and_norms_are_rejected():
    with pytest.raises(ValueError, match="unexpected arguments: alpha"):
        NormalizedOptimizer(keras.optimizers.SGD(0.1), alpha=0.1)
    with pytest.raises(ValueError, match="Unknown norm"):
        NormalizedOptimizer(keras.optimizers.SGD(0.1), "no_such_norm")
    with pytest.raises(ValueError, match="Unknown blocks"):
        NormalizedOptimizer(keras.optimizers.SGD(0.1), blocks="per_row")


# ---- proxies to the inner optimizer ----------------------------------------------------


def test_learning_rate_iterations_and_variables_proxy_the_inner_optimizer():
    model = tiny_model()
    inner = keras.optimizers.Adam(0.01)
    opt = ClippedOptimizer(inner, clipnorm=0.5)
    opt.learning_rate = 0.25
    assert float(inner.learning_rate) == pytest.approx(0.25)
    apply_once(opt, model, tiny_grads(model))
    apply_once(opt, model, tiny_grads(model))
    assert int(opt.iterations) == int(inner.iterations) == 2
    own = {id(v) for v in opt.variables}
    assert all(id(v) in own for v in inner.variables)
    assert len(inner.variables) == 2 + 2 * len(model.weights)  # iteration, lr, m and v


def test_learning_rate_schedule_of_the_inner_optimizer_is_followed():
    model = tiny_model()
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
    opt = NormalizedOptimizer(keras.optimizers.SGD(schedule))
    for _ in range(3):
        apply_once(opt, model, tiny_grads(model))
    assert float(opt.learning_rate) == pytest.approx(0.1 * 0.5**3)


# ---- the seed's norm registry API ----------------------------------------------------------


def test_set_normalization_function_uses_the_library_registry():
    def mean_abs(flat_block):
        return tf.reduce_mean(tf.abs(flat_block))

    NormalizedOptimizer.set_normalization_function("wrappers_test_mean_abs", mean_abs)
    assert "wrappers_test_mean_abs" in tf_bng.available_norms()
    functions = ClippedOptimizer.get_normalization_functions()
    assert {"l1", "l2", "max", "std", "wrappers_test_mean_abs"} <= set(functions)
    t = np.array([[3.0, -4.0], [0.0, 1.0]], np.float32)
    assert float(functions["l2"](tf.constant(t))) == pytest.approx(np.sqrt(26.0), rel=1e-6)
    assert float(functions["wrappers_test_mean_abs"](tf.constant(t))) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="built-in"):
        NormalizedOptimizer.set_normalization_function("l2", mean_abs)


def test_custom_norm_drives_the_step():
    NormalizedOptimizer.set_normalization_function(
        "wrappers_test_max_abs", lambda v: tf.reduce_max(tf.abs(v))
    )
    model = tiny_model()
    grads = tiny_grads(model)
    opt = NormalizedOptimizer(keras.optimizers.SGD(1.0), "wrappers_test_max_abs", blocks="global")
    w0, w1 = apply_once(opt, model, grads)
    largest_step = max(np.max(np.abs(a - b)) for a, b in zip(w0, w1))
    assert largest_step == pytest.approx(1.0, rel=1e-5)
