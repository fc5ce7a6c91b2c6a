"""Parameter groups, selectors and max_scale against the float64 numpy reference (issue 11)."""

import re

import keras
import numpy as np
import numpy_reference as ref
import pytest
import tensorflow as tf

import tf_bng
from tf_bng import selectors
from tf_bng.gradient_transforms import ScaleBlocks


@pytest.fixture(scope="module")
def model():
    f64 = {"dtype": "float64"}
    inputs = keras.Input((5,), dtype="float64")
    x = keras.layers.Dense(4, activation="tanh", name="body1", **f64)(inputs)
    x = keras.layers.BatchNormalization(name="norm", **f64)(x)
    x = keras.layers.Dense(3, activation="tanh", name="body2", **f64)(x)
    out = keras.layers.Dense(2, name="head", **f64)(x)
    m = keras.Model(inputs, out)
    rng = np.random.default_rng(0)
    for v in m.trainable_variables:
        v.assign(rng.normal(size=v.shape))
    return m


@pytest.fixture(scope="module")
def grads(model):
    rng = np.random.default_rng(1)
    return [rng.normal(size=v.shape) * 10 ** rng.uniform(-2, 1) for v in model.trainable_variables]


@pytest.fixture(autouse=True, params=["per_block", "vectorized"])
def transform_mode(request, monkeypatch):
    """Every test here runs twice: block by block, and all blocks of a rule at once."""
    if request.param == "vectorized":
        monkeypatch.setattr(ScaleBlocks, "vectorize_min_blocks", 1)
    return request.param


def _reference(model, grads, assignment, settings):
    """assignment[i] = rule of variable i (None: untouched); settings[rule] = reference kwargs."""
    variables = model.trainable_variables
    values = [v.numpy() for v in variables]
    out = [np.array(g) for g in grads]
    for rule, kwargs in settings.items():
        kwargs = dict(kwargs)
        mode = kwargs.pop("blocks", "layer")
        members = [i for i, r in enumerate(assignment) if r == rule]
        drop = [i for i in range(len(variables)) if i not in members]
        blocks = ref.blocks_for(mode, model, variables, drop=drop)
        new = ref.transform(list(grads), values, blocks, **kwargs)
        for i in members:
            out[i] = new[i]
    return out


def test_first_matching_group_wins_and_matches_reference(model, grads):
    variables = model.trainable_variables
    config = tf_bng.TransformConfig(
        transform="ng",
        groups=[
            (selectors.one_dimensional, {"transform": "clip", "threshold": 0.05}),
            (re.compile("head"), {"transform": "ng_adap", "alpha": 0.1, "max_scale": 0.5}),
        ],
    )
    out, norms = tf_bng.BlockTransform(config)([tf.constant(g) for g in grads], variables)
    # independent assignment: rank <= 1 first, then the head's (2-D) kernel, the rest top level
    assignment = [1 if len(v.shape) <= 1 else 2 if "head" in v.path else 0 for v in variables]
    expected = _reference(
        model,
        grads,
        assignment,
        {
            0: dict(transform="ng"),
            1: dict(transform="clip", threshold=0.05),
            2: dict(transform="ng_adap", alpha=0.1, max_scale=0.5),
        },
    )
    for got, want in zip(out, expected):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-6)


def test_a_layer_split_between_groups_gives_two_named_blocks(model):
    bt = tf_bng.BlockTransform(transform="ng", groups=[(selectors.one_dimensional, {})])
    names = bt.partition(model.trainable_variables).names
    assert any(n.endswith("body1") for n in names)
    assert any(n.endswith("body1@group1") for n in names)
    assert len(names) == 3 + 4  # 3 kernels at the top level; 3 biases + (gamma, beta) of norm
    assert sum(n.endswith("@group1") for n in names) == 4


def test_exclude_equals_a_group_with_transform_none(model, grads):
    variables = model.trainable_variables
    tensors = [tf.constant(g) for g in grads]
    excluded = tf_bng.BlockTransform(transform="ng", exclude=("norm",))
    grouped = tf_bng.BlockTransform(
        transform="ng", groups=[(selectors.path("norm"), {"transform": "none"})]
    )
    a, _ = excluded(tensors, variables)
    b, _ = grouped(tensors, variables)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    assert excluded.partition(variables) == grouped.partition(variables)


@pytest.mark.parametrize("max_scale", [1e-3, 0.05, 10.0])
def test_ng_adap_max_scale_caps_the_trust_ratio(model, grads, max_scale):
    variables = model.trainable_variables
    out, _ = tf_bng.BlockTransform(transform="ng_adap", alpha=0.5, max_scale=max_scale)(
        [tf.constant(g) for g in grads], variables
    )
    expected = _reference(
        model,
        grads,
        [0] * len(variables),
        {0: dict(transform="ng_adap", alpha=0.5, max_scale=max_scale)},
    )
    for got, want in zip(out, expected):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-6)


def test_max_scale_holds_on_the_exact_path_too():
    var = keras.Variable(np.ones((4, 4), np.float32), name="w")
    grad = tf.constant(np.full((4, 4), 1e-30, np.float32))  # scale 1e30: the exact path
    result = tf_bng.BlockTransform(transform="ng", max_scale=1e3).apply([grad], [var])
    np.testing.assert_allclose(result.grads[0].numpy(), np.full((4, 4), 1e-27), rtol=1e-6)
    assert result.scales.numpy()[0] == pytest.approx(1e3, rel=1e-6)


def test_apply_reports_the_scale_of_every_block(model, grads):
    variables = model.trainable_variables
    result = tf_bng.BlockTransform(transform="ng").apply([tf.constant(g) for g in grads], variables)
    np.testing.assert_allclose(result.scales.numpy() * result.norms.numpy(), 1.0, rtol=1e-6)


def test_a_bare_string_selector_is_refused_with_the_two_ways_to_say_it():
    with pytest.raises(TypeError, match=r"selectors.path\('bias'\)"):
        tf_bng.TransformConfig(transform="ng", groups=[("bias", {"transform": "clip"})])


def test_unknown_override_names_the_valid_ones():
    with pytest.raises(ValueError, match="valid: transform, norm, blocks, alpha, threshold"):
        tf_bng.TransformConfig(transform="ng", groups=[(selectors.one_dimensional, {"lr": 1})])
    with pytest.raises(ValueError, match="alpha must be > 0"):
        tf_bng.TransformConfig(transform="ng", groups=[(selectors.one_dimensional, {"alpha": -1})])


def test_callable_selector_and_global_clip_group(model, grads):
    variables = model.trainable_variables

    def is_body(v):
        return "body" in v.path

    config = tf_bng.TransformConfig(
        transform="none", groups=[(is_body, {"transform": "global_clip", "threshold": 0.1})]
    )
    out, _ = tf_bng.BlockTransform(config)([tf.constant(g) for g in grads], variables)
    assignment = [1 if "body" in v.path else 0 for v in variables]
    expected = _reference(
        model,
        grads,
        assignment,
        {0: dict(transform="none"), 1: dict(transform="clip", threshold=0.1, blocks="global")},
    )
    for got, want in zip(out, expected):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-6)


def test_selectors_serialize_by_regex_or_name_and_refuse_callables():
    assert selectors.deserialize_selector(
        selectors.serialize_selector(selectors.path("a.c"))
    ) == selectors.path("a.c")
    assert (
        selectors.deserialize_selector({"builtin": "one_dimensional"}) is selectors.one_dimensional
    )
    with pytest.raises(ValueError, match="cannot be saved"):
        selectors.serialize_selector(lambda v: True)
