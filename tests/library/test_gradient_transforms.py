"""Composable gradient transforms against independent numpy references (issue 21).

LARS is checked against TensorFlow Model Garden's rule (``official/modeling/optimization/lars.py``,
``classic_momentum=True``) written out in numpy: coupled decay in the gradient, per-variable
trust ratio ``eta * ||w|| / ||g + wd * w||`` (1 where a norm is 0), SGD momentum.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_bng
from tf_bng import gradient_transforms as gt
from tf_bng import selectors

RNG = np.random.default_rng(7)


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(5, name="body"), keras.layers.Dense(3, name="head")],
        name="net",
    )
    return model


def _batch():
    return RNG.normal(size=(8, 4)).astype("float32"), RNG.normal(size=(8, 3)).astype("float32")


def _grads(model, x, y):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(x) - y))
    return tape.gradient(loss, model.trainable_variables)


def _mg_lars_reference(weights, grads, velocity, *, lr, momentum, nesterov, wd, eta, no_decay):
    """Model Garden's LARS step, per variable, in float64 numpy."""
    new_w, new_v = [], []
    for k, (w, g, v) in enumerate(zip(weights, grads, velocity)):
        w, g = w.astype(np.float64), g.astype(np.float64)
        if k not in no_decay:
            g = g + wd * w
        trust = 1.0
        if k not in no_decay:  # exclude_from_layer_adaptation defaults to the decay exclusions
            w_norm, g_norm = np.linalg.norm(w), np.linalg.norm(g)
            trust = eta * w_norm / g_norm if w_norm > 0 and g_norm > 0 else 1.0
        scaled_lr = lr * trust
        v = momentum * v + scaled_lr * g
        update = momentum * v + scaled_lr * g if nesterov else v
        new_w.append(w - update)
        new_v.append(v)
    return new_w, new_v


@pytest.mark.parametrize("nesterov", [False, True])
def test_lars_by_composition_is_model_gardens_lars(nesterov):
    model = _model()
    variables = model.trainable_variables
    transform = gt.lars(weight_decay=1e-2, eta=0.05, exclude_from_weight_decay=["bias"])
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9, nesterov=nesterov)
    weights = [v.numpy().astype(np.float64) for v in variables]
    velocity = [np.zeros_like(w) for w in weights]
    no_decay = [k for k, v in enumerate(variables) if v.path.endswith("bias")]
    assert no_decay == [1, 3]
    for _ in range(4):
        x, y = _batch()
        grads = _grads(model, x, y)
        expected, velocity = _mg_lars_reference(
            [v.numpy() for v in variables],
            [g.numpy() for g in grads],
            velocity,
            lr=0.1,
            momentum=0.9,
            nesterov=nesterov,
            wd=1e-2,
            eta=0.05,
            no_decay=no_decay,
        )
        optimizer.apply(transform.apply(grads, variables).grads, variables)
        for v, e in zip(variables, expected):
            np.testing.assert_allclose(v.numpy(), e, rtol=2e-5, atol=1e-7)
    # The trust ratio acted: a plain SGD run from the same start ends elsewhere.
    weights_after = [v.numpy() for v in variables]
    assert any(np.abs(a - w).max() > 1e-3 for a, w in zip(weights_after, weights))


def test_decoupled_weight_decay_on_the_inner_sgd_is_a_different_rule():
    """The README's other route (Keras weight_decay on SGD) does not equal Model Garden's LARS."""
    x, y = _batch()
    coupled, decoupled = _model(), _model()
    grads = _grads(coupled, x, y)
    lars = gt.lars(weight_decay=0.05, eta=0.05)
    keras.optimizers.SGD(0.5).apply(
        lars.apply(grads, coupled.trainable_variables).grads, coupled.trainable_variables
    )
    adapt_only = gt.trust_ratio(alpha=0.05, blocks="variable")
    keras.optimizers.SGD(0.5, weight_decay=0.05).apply(
        adapt_only.apply(grads, decoupled.trainable_variables).grads, decoupled.trainable_variables
    )
    kernel_a, kernel_b = coupled.trainable_variables[0].numpy(), decoupled.trainable_variables[0]
    assert np.abs(kernel_a - kernel_b.numpy()).max() > 1e-4


def _np_norm(arrays):
    return np.sqrt(sum(float(np.sum(np.square(a.astype(np.float64)))) for a in arrays))


def test_route_normalizes_the_body_and_trust_ratios_the_head():
    model = _model()
    variables = model.trainable_variables
    grads = _grads(model, *_batch())
    transform = gt.route(
        [(selectors.path("head"), gt.trust_ratio(alpha=0.02))], default=gt.normalize()
    )
    result = transform.apply(grads, variables)
    assert transform.layout(variables, [True] * 4).names == ("net/body", "net/head@group1")
    g = [t.numpy() for t in grads]
    w = [v.numpy() for v in variables]
    body_scale = 1.0 / _np_norm(g[:2])
    head_scale = 0.02 * _np_norm(w[2:]) / _np_norm(g[2:])
    expected = [a * body_scale for a in g[:2]] + [a * head_scale for a in g[2:]]
    for out, e in zip(result.grads, expected):
        np.testing.assert_allclose(out.numpy(), e, rtol=1e-5)
    np.testing.assert_allclose(result.norms.numpy(), [_np_norm(g[:2]), _np_norm(g[2:])], rtol=1e-5)
    np.testing.assert_allclose(result.scales.numpy(), [body_scale, head_scale], rtol=1e-5)


def test_chain_applies_stages_in_order_and_reports_each():
    model = _model()
    variables = model.trainable_variables
    grads = _grads(model, *_batch())
    transform = gt.chain(gt.add_decayed_weights(0.1), gt.clip_by_global_norm(threshold=0.5))
    result = transform.apply(grads, variables)
    decayed = [g.numpy() + 0.1 * v.numpy() for g, v in zip(grads, variables)]
    scale = min(1.0, 0.5 / _np_norm(decayed))
    for out, d in zip(result.grads, decayed):
        np.testing.assert_allclose(out.numpy(), d * scale, rtol=1e-5)
    assert transform.layout(variables, [True] * 4).names == ("global",)
    np.testing.assert_allclose(result.scales.numpy(), [scale], rtol=1e-5)


def test_masked_leaves_the_others_unchanged_and_reports_no_block_for_them():
    model = _model()
    variables = model.trainable_variables
    grads = _grads(model, *_batch())
    transform = gt.masked(selectors.path("kernel"), gt.normalize(blocks="variable"))
    result = transform.apply(grads, variables)
    part = transform.layout(variables, [True] * 4)
    assert part.names == ("net/body/kernel", "net/head/kernel") and part.excluded == (1, 3)
    for k in (1, 3):
        np.testing.assert_array_equal(result.grads[k].numpy(), grads[k].numpy())
    for k in (0, 2):
        np.testing.assert_allclose(np.linalg.norm(result.grads[k].numpy()), 1.0, rtol=1e-5)


@pytest.mark.parametrize("magnitude", [1e-30, 1e30])
def test_a_chain_is_exact_over_the_float_range(magnitude):
    """normalize then clip on gradients of 1e-30 and 1e30: unit norm, no overflow or underflow."""
    model = _model()
    variables = model.trainable_variables
    base = [RNG.normal(size=v.shape).astype("float32") for v in variables]
    grads = [tf.constant(b * np.float32(magnitude)) for b in base]
    transform = gt.chain(gt.normalize(), gt.clip_by_block_norm(threshold=0.5))
    result = transform.apply(grads, variables)
    for block in ((0, 1), (2, 3)):
        expected_scale = 0.5 / _np_norm([base[i] for i in block])
        for i in block:
            np.testing.assert_allclose(result.grads[i].numpy(), base[i] * expected_scale, rtol=1e-5)
    norms = result.norms.numpy()
    np.testing.assert_allclose(
        norms[:2], [magnitude * _np_norm(base[:2]), magnitude * _np_norm(base[2:])], rtol=1e-5
    )
    np.testing.assert_allclose(norms[2:], [1.0, 1.0], rtol=1e-5)  # the clip saw unit norms
    assert bool(result.finite)


def test_non_finite_gradients_are_flagged_by_every_combinator():
    model = _model()
    variables = model.trainable_variables
    grads = list(_grads(model, *_batch()))
    grads[3] = tf.fill(grads[3].shape, np.float32(np.nan))  # head bias
    for transform in (
        gt.masked(selectors.path("kernel"), gt.normalize()),  # the NaN is in the passed part
        gt.chain(gt.add_decayed_weights(0.1), gt.normalize()),
        gt.route([(selectors.path("body"), gt.normalize())]),
        gt.lars(weight_decay=1e-3, exclude_from_weight_decay=["bias"]),
    ):
        assert not bool(transform.apply(grads, variables).finite), transform


def test_train_step_takes_a_composed_transform():
    model = _model()
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
    transform = gt.lars(weight_decay=1e-2, eta=0.05, exclude_from_weight_decay=["bias"])
    step = tf_bng.TrainStep(
        model=model,
        loss=keras.losses.MeanSquaredError(),
        optimizer=optimizer,
        transform=transform,
        global_batch_size=8,
    )
    assert step.block_names == ("net/body/kernel", "net/head/kernel")
    reference = _model()
    reference_opt = keras.optimizers.SGD(0.1, momentum=0.9)
    for _ in range(2):
        x, y = _batch()
        step.step((tf.constant(x), tf.constant(y)))
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.reduce_mean(tf.square(reference(x) - y), axis=-1)) / 8
        grads = tape.gradient(loss, reference.trainable_variables)
        new = transform.apply(grads, reference.trainable_variables).grads
        reference_opt.apply(new, reference.trainable_variables)
    for a, b in zip(model.trainable_variables, reference.trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-7)


def test_transform_gradients_takes_a_composition_but_not_settings_beside_it():
    model = _model()
    variables = model.trainable_variables
    grads = _grads(model, *_batch())
    out = tf_bng.transform_gradients(grads, variables, transform=gt.normalize(blocks="global"))
    np.testing.assert_allclose(_np_norm([g.numpy() for g in out]), 1.0, rtol=1e-5)
    with pytest.raises(TypeError, match="norm"):
        tf_bng.transform_gradients(grads, variables, transform=gt.normalize(), norm="max")


def test_bad_compositions_name_what_is_valid():
    with pytest.raises(ValueError, match="at least one"):
        gt.chain()
    with pytest.raises(TypeError, match="GradientTransform"):
        gt.chain(gt.normalize(), "ng")
    with pytest.raises(ValueError, match="Valid choices"):
        gt.normalize(blocks="row")
    with pytest.raises(ValueError, match="weight_decay"):
        gt.add_decayed_weights(0.0)
    with pytest.raises(ValueError, match="alpha"):
        gt.trust_ratio(alpha=-1.0)
    with pytest.raises(TypeError, match="bare string"):
        gt.route([("head", gt.normalize())])
