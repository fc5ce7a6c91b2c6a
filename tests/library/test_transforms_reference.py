"""Every norm x transform x blocks mode against the float64 numpy reference.

The model holds Dense, Conv2D, BatchNormalization, LSTM and Embedding layers in
float64. Gradients are random dense tensors (scaled over five decades, so
``clip`` both clips and passes blocks) and a real GradientTape gradient whose
Embedding part is an IndexedSlices with repeated indices.
"""

import re

import keras
import numpy as np
import numpy_reference as ref
import pytest
import tensorflow as tf

import tf_bng
from tf_bng.gradient_transforms import ScaleBlocks

NORMS = tuple(ref.NORMS)
TRANSFORMS = ref.TRANSFORMS
RTOL = 1e-6
TAPE_THRESHOLD = 0.1  # between the smallest and largest l2 block norm of the tape gradient
TOKENS = np.array([[1, 1, 2, 5, 1], [2, 2, 0, 1, 1], [6, 6, 6, 6, 3]], np.int32)


def kernels_apart(variable) -> str:
    """A user grouping: every kernel in one block, everything else in another."""
    return "kernels" if "kernel" in variable.path else "others"


BLOCK_MODES = {
    "layer": "layer",
    "variable": "variable",
    "global": "global",
    "callable": kernels_apart,
}


@pytest.fixture(scope="module")
def float64_model():
    # dtype= per layer, not keras.config.set_floatx: the first layer built in a
    # process latches the global dtype policy, which restoring floatx does not undo.
    f64 = {"dtype": "float64"}
    image = keras.Input((6, 6, 2), dtype="float64")
    x = keras.layers.Conv2D(3, 3, **f64)(image)
    x = keras.layers.BatchNormalization(**f64)(x)
    x = keras.layers.Dense(4, activation="tanh", **f64)(keras.layers.Flatten(**f64)(x))
    tokens = keras.Input((5,), dtype="int32")
    h = keras.layers.LSTM(2, **f64)(keras.layers.Embedding(7, 3, **f64)(tokens))
    out = keras.layers.Dense(1, **f64)(keras.layers.Concatenate(**f64)([x, h]))
    model = keras.Model([image, tokens], out)
    rng = np.random.default_rng(0)
    for v in model.trainable_variables:
        v.assign(rng.normal(size=v.shape) * 10 ** rng.uniform(-1, 1))
    assert all(v.dtype == "float64" for v in model.trainable_variables)
    return model


@pytest.fixture(scope="module")
def random_grads(float64_model):
    rng = np.random.default_rng(1)
    shapes = [v.shape for v in float64_model.trainable_variables]
    return [rng.normal(size=shape) * 10 ** rng.uniform(-3, 2) for shape in shapes]


@pytest.fixture(scope="module")
def tape_grads(float64_model):
    rng = np.random.default_rng(2)
    image = tf.constant(rng.normal(size=(3, 6, 6, 2)))
    with tf.GradientTape() as tape:
        pred = float64_model([image, tf.constant(TOKENS)], training=True)
        loss = tf.reduce_mean(tf.square(pred - 1.0))
    grads = tape.gradient(loss, float64_model.trainable_variables)
    sparse = [g for g in grads if isinstance(g, tf.IndexedSlices)]
    assert len(sparse) == 1 and len(np.unique(sparse[0].indices)) < len(sparse[0].indices)
    return grads


@pytest.fixture(autouse=True, params=["per_block", "vectorized"])
def transform_mode(request, monkeypatch):
    """Every test here runs twice: block by block, and all blocks of a rule at once."""
    if request.param == "vectorized":
        monkeypatch.setattr(ScaleBlocks, "vectorize_min_blocks", 1)
    return request.param


def _values(model):
    return [v.numpy() for v in model.trainable_variables]


def _check_against_reference(model, grads, *, norm, transform, mode, ref_norm=None, **settings):
    variables = model.trainable_variables
    eps = settings.pop("eps", 1e-7)
    config = tf_bng.TransformConfig(
        transform=transform, norm=norm, blocks=BLOCK_MODES[mode], epsilon=eps, **settings
    )
    bt = tf_bng.BlockTransform(config)
    part = bt.partition(variables)
    out, norms = bt([tf.constant(g) if isinstance(g, np.ndarray) else g for g in grads], variables)

    ref_mode = "global" if transform == "global_clip" else BLOCK_MODES[mode]
    blocks = ref.blocks_for(ref_mode, model, variables)
    assert ref.as_set(part.blocks) == ref.as_set(blocks)
    dense = [ref.densify(g) for g in grads]
    ref_norm = ref_norm or norm
    expected = ref.transform(
        dense, _values(model), blocks, transform=transform, norm=ref_norm, eps=eps, **settings
    )
    for got, want, g in zip(out, expected, grads):
        assert isinstance(got, tf.IndexedSlices) == isinstance(g, tf.IndexedSlices)
        np.testing.assert_allclose(ref.densify(got), want, rtol=RTOL, atol=0)
    expected_norms = [ref.block_norm(ref_norm, [dense[i] for i in ix]) for ix in part.blocks]
    np.testing.assert_allclose(norms.numpy(), expected_norms, rtol=1e-6)


@pytest.mark.parametrize("mode", BLOCK_MODES)
@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("norm", NORMS)
def test_random_gradients_match_reference(float64_model, random_grads, norm, transform, mode):
    _check_against_reference(
        float64_model, random_grads, norm=norm, transform=transform, mode=mode, alpha=0.3
    )


@pytest.mark.parametrize("mode", ["layer", "variable"])
@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("norm", NORMS)
def test_tape_gradients_with_repeated_embedding_rows_match_reference(
    float64_model, tape_grads, norm, transform, mode
):
    _check_against_reference(
        float64_model,
        tape_grads,
        norm=norm,
        transform=transform,
        mode=mode,
        threshold=TAPE_THRESHOLD,
    )


@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("norm", ["l2", "avg_l1", "std"])
def test_a_large_epsilon_enters_every_scale_as_n_plus_epsilon(
    float64_model, random_grads, norm, transform
):
    _check_against_reference(
        float64_model,
        random_grads,
        norm=norm,
        transform=transform,
        mode="layer",
        eps=0.5,
        threshold=0.05,
    )


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_registered_custom_norm_transforms_like_its_reference(float64_model, tape_grads, transform):
    tf_bng.register_norm("test_transforms_l4", lambda flat: tf.reduce_sum(flat**4) ** 0.25)
    _check_against_reference(
        float64_model,
        tape_grads,
        norm="test_transforms_l4",
        ref_norm=lambda x: np.sum(x**4) ** 0.25,
        transform=transform,
        mode="layer",
        threshold=TAPE_THRESHOLD,
    )


def test_gradients_exercise_both_sides_of_the_clip_threshold(
    float64_model, random_grads, tape_grads
):
    blocks = ref.blocks_for("layer", float64_model, float64_model.trainable_variables)
    for grads, threshold in ((random_grads, 1.0), (tape_grads, TAPE_THRESHOLD)):
        norms = [ref.block_norm("l2", [ref.densify(grads[i]) for i in ix]) for ix in blocks]
        assert min(norms) < threshold < max(norms)


def test_functional_entry_point_equals_block_transform(float64_model, random_grads):
    variables = float64_model.trainable_variables
    grads = [tf.constant(g) for g in random_grads]
    fn = tf_bng.transform_gradients(grads, variables, transform="ng_adap", norm="l1", alpha=0.5)
    cls, _ = tf_bng.BlockTransform(transform="ng_adap", norm="l1", alpha=0.5)(grads, variables)
    for a, b in zip(fn, cls):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


# --- exclude and None ----------------------------------------------------------


@pytest.mark.parametrize("transform", ["ng", "ng_adap", "clip", "global_clip"])
def test_excluded_and_none_gradients_pass_unchanged_and_join_no_block(
    float64_model, random_grads, transform
):
    variables = float64_model.trainable_variables
    paths = [v.path for v in variables]
    excluded = [i for i, p in enumerate(paths) if re.search(r"bias$|batch_normalization", p)]
    missing = next(i for i, p in enumerate(paths) if "lstm" in p)
    grads = [None if i == missing else tf.constant(g) for i, g in enumerate(random_grads)]
    config = tf_bng.TransformConfig(transform=transform, exclude=(r"bias$", "batch_normalization"))
    bt = tf_bng.BlockTransform(config)
    out, _ = bt(grads, variables)

    part = bt.partition(variables, grads)
    in_blocks = [i for ix in part.blocks for i in ix]
    assert sorted(part.excluded) == excluded
    assert not set(in_blocks) & (set(excluded) | {missing})
    assert sorted(in_blocks + excluded + [missing]) == list(range(len(variables)))
    assert out[missing] is None
    for i in excluded:
        np.testing.assert_array_equal(out[i].numpy(), random_grads[i])
    mode = "global" if transform == "global_clip" else "layer"
    blocks = ref.blocks_for(mode, float64_model, variables, drop=excluded + [missing])
    dense = [None if g is None else g.numpy() for g in grads]
    expected = ref.transform(dense, _values(float64_model), blocks, transform=transform)
    for i in in_blocks:
        np.testing.assert_allclose(out[i].numpy(), expected[i], rtol=RTOL)


def test_all_gradients_none_gives_none_and_no_blocks(float64_model):
    variables = float64_model.trainable_variables
    out, norms = tf_bng.BlockTransform(transform="ng")([None] * len(variables), variables)
    assert out == [None] * len(variables)
    assert norms.shape == (0,)


# --- validation ---------------------------------------------------------------


def test_unknown_transform_error_names_the_five_transforms():
    with pytest.raises(ValueError) as err:
        tf_bng.transform_gradients([], [], transform="lars")
    for name in TRANSFORMS:
        assert repr(name) in str(err.value)


def test_unknown_blocks_error_names_the_modes():
    with pytest.raises(ValueError) as err:
        tf_bng.TransformConfig(transform="ng", blocks="neuron")
    for name in ("layer", "variable", "global"):
        assert repr(name) in str(err.value)
    with pytest.raises(ValueError, match="'variable'"):
        tf_bng.partition_variables([], blocks="neuron")


@pytest.mark.parametrize("name", ["alpha", "threshold"])
@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_non_positive_alpha_or_threshold_is_rejected(name, bad):
    with pytest.raises(ValueError, match=name):
        tf_bng.TransformConfig(transform="ng_adap", **{name: bad})
    with pytest.raises(ValueError, match=name):
        tf_bng.transform_gradients([], [], transform="clip", **{name: bad})


# --- degenerate blocks ----------------------------------------------------------

SCALING = ("ng", "ng_adap", "clip", "global_clip")


def _variables(*shapes):
    return [
        keras.Variable(np.full(shape, 0.5), dtype="float64", name=f"v{i}")
        for i, shape in enumerate(shapes)
    ]


@pytest.mark.parametrize("transform", ["ng", "ng_adap", "clip"])
@pytest.mark.parametrize("norm", NORMS)
def test_zero_block_passes_unchanged_next_to_a_normal_block(norm, transform):
    variables = _variables((4, 3), (5,))
    grads = [tf.zeros((4, 3), tf.float64), tf.constant(np.linspace(-2.0, 3.0, 5))]
    bt = tf_bng.BlockTransform(transform=transform, norm=norm, blocks="variable")
    out, norms = bt(grads, variables)
    assert np.all(out[0].numpy() == 0.0) and norms.numpy()[0] == 0.0
    values = [v.numpy() for v in variables]
    dense = [g.numpy() for g in grads]
    expected = ref.transform(dense, values, [[1]], transform=transform, norm=norm)
    np.testing.assert_allclose(out[1].numpy(), expected[1], rtol=RTOL)


@pytest.mark.parametrize("transform", SCALING)
@pytest.mark.parametrize("norm", NORMS)
def test_all_zero_gradients_stay_zero_and_finite(norm, transform):
    variables = _variables((4, 3), (5,))
    grads = [tf.zeros((4, 3), tf.float64), tf.zeros((5,), tf.float64)]
    out = tf_bng.transform_gradients(
        grads, variables, transform=transform, norm=norm, blocks="global"
    )
    assert all(np.all(o.numpy() == 0.0) for o in out)


@pytest.mark.parametrize("transform", SCALING)
@pytest.mark.parametrize("value", [0.1, -7.77, 1e-3])
def test_constant_block_under_std_is_unchanged_never_amplified(value, transform):
    variables = _variables((37, 53), (3,))
    grads = [tf.constant(np.full(v.shape, value)) for v in variables]
    out = tf_bng.transform_gradients(
        grads, variables, transform=transform, norm="std", blocks="global"
    )
    for g, o in zip(grads, out):
        np.testing.assert_array_equal(o.numpy(), g.numpy())


@pytest.mark.parametrize("shape", [(), (1,)])
@pytest.mark.parametrize("transform", SCALING)
@pytest.mark.parametrize("norm", NORMS)
def test_one_element_block_is_finite_and_follows_the_reference(norm, transform, shape):
    (variable,) = _variables(shape)
    grad = tf.constant(np.full(shape, -0.25))
    settings = dict(transform=transform, norm=norm, alpha=0.5)
    (out,) = tf_bng.transform_gradients([grad], [variable], **settings)
    assert out.shape == shape and np.all(np.isfinite(out.numpy()))
    (expected,) = ref.transform([grad.numpy()], [variable.numpy()], [[0]], **settings)
    np.testing.assert_allclose(out.numpy(), expected, rtol=RTOL)
    if norm == "std":  # the std of one element is 0: unchanged
        assert out.numpy() == -0.25


@pytest.mark.parametrize("transform", ["ng", "ng_adap", "clip"])
def test_zero_gradient_with_zero_variable_is_unchanged(transform):
    (variable,) = _variables((3,))
    variable.assign(np.zeros(3))
    (out,) = tf_bng.transform_gradients([tf.zeros(3, tf.float64)], [variable], transform=transform)
    assert np.all(out.numpy() == 0.0)


def test_ng_adap_zero_initialised_bias_gets_its_raw_gradient_and_trains():
    """m == 0 (a zero bias in "variable" mode): scale 1, so the bias leaves zero."""
    rng = np.random.default_rng(3)
    x = tf.constant(rng.normal(size=(32, 4)), tf.float32)
    y = tf.constant(x.numpy() @ np.array([[1.0], [-2.0], [0.5], [3.0]]) + 2.0, tf.float32)
    dense = keras.layers.Dense(1, kernel_initializer=keras.initializers.RandomNormal(seed=0))
    dense.build((None, 4))
    variables = dense.trainable_variables
    assert np.all(variables[1].numpy() == 0.0)
    optimizer = keras.optimizers.SGD(learning_rate=0.5)
    losses, bias_steps = [], []
    for _ in range(6):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(dense(x) - y))
        grads = tape.gradient(loss, variables)
        new = tf_bng.transform_gradients(
            grads, variables, transform="ng_adap", blocks="variable", alpha=0.2
        )
        if not bias_steps:
            np.testing.assert_array_equal(new[1].numpy(), grads[1].numpy())  # m == 0: unchanged
        before = variables[1].numpy().copy()
        optimizer.apply_gradients(zip(new, variables))
        bias_steps.append(float(np.abs(variables[1].numpy() - before).max()))
        losses.append(float(loss))
    assert all(step > 0 for step in bias_steps), bias_steps
    assert variables[1].numpy()[0] > 0.5  # moving toward the true intercept 2.0
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
