"""Norms and transforms over the whole floating-point range (issue 9).

Blocks whose largest |element| lies anywhere from 1e-35 to 1e35 (float32,
bfloat16), 1e-4 to 6e4 (float16) and 1e-300 to 1e300 (float64) are checked
against the float64 numpy reference, evaluated on the block divided by its
scale so that the reference itself neither under- nor overflows.

The reference reads elements below the compute dtype's smallest normal number
as zero, as TensorFlow's CPU kernels do (denormals-are-zero): a gradient that
TensorFlow computed never holds one (checked below), so such inputs exist
only in tests.
"""

import keras
import numpy as np
import numpy_reference as ref
import pytest
import tensorflow as tf

import tf_bng
from tf_bng.gradient_transforms import ScaleBlocks

BUILTIN = tuple(ref.NORMS)
SCALES = {
    "float32": (1e-35, 1e-25, 1e-19, 3e-13, 1.0, 7e12, 1e19, 1e25, 1e35),
    "bfloat16": (1e-35, 1e-20, 1.0, 1e20, 1e35),
    "float16": (1e-4, 3e-2, 1.0, 3e2, 6e4),
    "float64": (1e-300, 1e-200, 1e-160, 1.0, 1e160, 1e200, 1e300),
}
COMPUTE = {
    "float32": np.float32,
    "bfloat16": np.float32,
    "float16": np.float32,
    "float64": np.float64,
}


def _block(dtype: str, scale: float, seed: int = 0):
    """Two tensors of normal draws, scaled so that the largest |element| is ``scale``."""
    rng = np.random.default_rng(seed)
    parts = [rng.normal(size=(97, 31)), rng.normal(-0.5, 2.0, size=(29,))]
    top = max(np.abs(p).max() for p in parts)
    tensors = [tf.cast(tf.constant(p / top * scale, tf.float64), dtype) for p in parts]
    return tensors


def _as_seen(tensors, dtype: str) -> list[np.ndarray]:
    """The block's values in float64, subnormals of the compute dtype read as zero."""
    tiny = np.finfo(COMPUTE[dtype]).tiny
    out = []
    for t in tensors:
        x = tf.cast(t, tf.float64).numpy()
        out.append(np.where(np.abs(x) < tiny, 0.0, x))
    return out


def _reference_norm(name, values, scale) -> float:
    return ref.block_norm(name, [v / scale for v in values]) * scale


def _fits(value: float, dtype: str) -> bool:
    info = np.finfo(COMPUTE[dtype])
    return float(info.tiny) <= value <= float(info.max)


CASES = [(d, s) for d, scales in SCALES.items() for s in scales]


def test_tensorflow_never_produces_the_denormals_the_reference_flushes():
    tiny = tf.constant([1e-20], tf.float32)
    assert (tiny * tiny).numpy()[0] == 0.0
    assert tf.matmul(tf.constant([[1e-20]]), tf.constant([[1e-20]])).numpy()[0, 0] == 0.0


@pytest.mark.parametrize("dtype,scale", CASES)
@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_norm_is_accurate_anywhere_in_the_range(name, dtype, scale):
    block = _block(dtype, scale)
    got = float(tf_bng.get_norm(name)(block).numpy())
    expected = _reference_norm(name, _as_seen(block, dtype), scale)
    if _fits(expected, dtype):
        assert got > 0 and np.isfinite(got)
        assert got == pytest.approx(expected, rel=1e-6)
    else:
        # l1 of thousands of 1e35 elements: the norm itself does not fit.
        assert expected > np.finfo(COMPUTE[dtype]).max and got == np.inf


@pytest.mark.parametrize("name", BUILTIN)
def test_norms_inside_a_compiled_function_match_eager(name):
    norm = tf_bng.get_norm(name)
    compiled = tf.function(lambda a, b: norm([a, b]))
    for scale in (1e-30, 1.0, 1e30):
        block = _block("float32", scale)
        assert compiled(*block).numpy() == pytest.approx(norm(block).numpy(), rel=1e-7)


@pytest.mark.parametrize("value", [1e-30, 1.0, 1e30])
def test_std_of_a_constant_block_is_exactly_zero_at_any_scale(value):
    block = [tf.fill([300, 7], tf.constant(value, tf.float32))]
    assert tf_bng.get_norm("std")(block).numpy() == 0.0


def test_registered_norm_is_rescued_where_its_own_powers_underflow():
    tf_bng.register_norm("l4_range_test", lambda g: tf.reduce_sum(g**4) ** 0.25)
    norm = tf_bng.get_norm("l4_range_test")
    for scale in (1e-15, 1e-30, 1e12, 1e30):  # g**4 underflows / overflows float32
        block = _block("float32", scale)
        flat = np.concatenate([v.ravel() for v in _as_seen(block, "float32")]) / scale
        expected = np.sum(flat**4) ** 0.25 * scale
        assert norm(block).numpy() == pytest.approx(expected, rel=1e-5)


# --- transforms ----------------------------------------------------------------


@pytest.fixture(autouse=True, params=["per_block", "vectorized"])
def transform_mode(request, monkeypatch):
    """Every test here runs twice: block by block, and all blocks of a rule at once."""
    if request.param == "vectorized":
        monkeypatch.setattr(ScaleBlocks, "vectorize_min_blocks", 1)
    return request.param


def _variables(block, value=0.3):
    return [
        keras.Variable(np.full(t.shape, value, np.float32), name=f"w{i}")
        for i, t in enumerate(block)
    ]


def _out_norm(name, out, dtype) -> float:
    values = [tf.cast(tf.convert_to_tensor(t), tf.float64).numpy() for t in out]
    return ref.block_norm(name, values)


@pytest.mark.parametrize("dtype,scale", CASES)
@pytest.mark.parametrize("name", BUILTIN)
def test_ng_block_comes_out_with_unit_norm_anywhere_in_the_range(name, dtype, scale):
    block = _block(dtype, scale)
    variables = [
        keras.Variable(np.ones(t.shape, np.float32), name=f"v{i}") for i, t in enumerate(block)
    ]
    bt = tf_bng.BlockTransform(transform="ng", norm=name, blocks="global")
    out, norms = bt(block, variables)
    assert all(o.dtype == t.dtype for o, t in zip(out, block))
    assert all(np.all(np.isfinite(tf.cast(o, tf.float64).numpy())) for o in out)
    tolerance = {"float32": 1e-6, "float64": 1e-12}.get(dtype, 1e-2)  # half: output rounding
    assert _out_norm(name, out, dtype) == pytest.approx(1.0, rel=tolerance)
    expected = _reference_norm(name, _as_seen(block, dtype), scale)
    if _fits(expected, "float32"):  # the reported norms are float32
        assert float(norms.numpy()[0]) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("scale", SCALES["float32"])
@pytest.mark.parametrize("name", ["l2", "l1", "max", "std"])
def test_clip_is_exact_on_both_sides_of_the_threshold_anywhere(name, scale):
    block = _block("float32", scale)
    variables = _variables(block)
    out, _ = tf_bng.BlockTransform(transform="clip", norm=name, threshold=1.0, blocks="global")(
        block, variables
    )
    expected = _reference_norm(name, _as_seen(block, "float32"), scale)
    if expected <= 1.0:
        for o, t in zip(out, block):
            np.testing.assert_array_equal(o.numpy(), t.numpy())
    else:
        assert _out_norm(name, out, "float32") == pytest.approx(1.0, rel=1e-6)


@pytest.mark.parametrize("scale", SCALES["float32"])
@pytest.mark.parametrize("weight", [1e-20, 1.0, 1e20])
def test_ng_adap_scale_matches_reference_where_representable(scale, weight):
    block = _block("float32", scale)
    variables = _variables(block, weight)
    out, _ = tf_bng.BlockTransform(transform="ng_adap", norm="l2", alpha=0.02, blocks="global")(
        block, variables
    )
    seen = _as_seen(block, "float32")
    n = _reference_norm("l2", seen, scale)
    m = ref.block_norm("l2", [np.asarray(v.numpy(), np.float64) for v in variables])
    expected_norm = 0.02 * m  # the new block has norm alpha * ||w||
    got = [o.numpy().astype(np.float64) for o in out]
    assert all(np.all(np.isfinite(g)) for g in got)
    assert ref.block_norm("l2", got) == pytest.approx(expected_norm, rel=1e-6)
    # and the direction is the gradient's
    cos = sum(np.sum(g * s) for g, s in zip(got, seen)) / (
        ref.block_norm("l2", got) * ref.block_norm("l2", [s / scale for s in seen]) * scale
    )
    assert cos == pytest.approx(1.0, rel=1e-6)
    assert np.isfinite(n)


def test_sparse_gradient_at_1e_minus_30_is_normalized_and_stays_sparse():
    values = tf.constant(np.random.default_rng(3).normal(size=(4, 3)) * 1e-30, tf.float32)
    grad = tf.IndexedSlices(values, tf.constant([1, 4, 1, 0]), tf.constant([6, 3]))
    variable = keras.Variable(np.ones((6, 3), np.float32), name="embedding")
    out, norms = tf_bng.BlockTransform(transform="ng")([grad], [variable])
    assert isinstance(out[0], tf.IndexedSlices)
    assert np.linalg.norm(tf.convert_to_tensor(out[0]).numpy()) == pytest.approx(1.0, rel=1e-6)
    dense = ref.densify(grad)
    assert norms.numpy()[0] == pytest.approx(np.linalg.norm(dense), rel=1e-6)


@pytest.mark.parametrize("transform", ["ng", "ng_adap", "clip"])
@pytest.mark.slow  # trains or spawns: 68 s (make test-fast skips it)
def test_transform_in_a_compiled_function_equals_eager_at_the_extremes(transform):
    bt = tf_bng.BlockTransform(transform=transform, blocks="variable")
    for scale in (1e-33, 1e33):
        block = _block("float32", scale)
        variables = _variables(block)
        eager, _ = bt(block, variables)
        compiled, _ = tf.function(lambda a, b, v=variables: bt([a, b], v))(*block)
        for e, c in zip(eager, compiled):
            np.testing.assert_allclose(c.numpy(), e.numpy(), rtol=1e-6)


# --- the default epsilon ---------------------------------------------------------


def test_epsilon_defaults_to_zero_everywhere():
    assert tf_bng.TransformConfig().epsilon == 0.0
    for wrapper in (
        tf_bng.NormalizedOptimizer,
        tf_bng.ClippedOptimizer,
        tf_bng.AdaptiveNormalizedOptimizer,
    ):
        assert wrapper(keras.optimizers.SGD()).epsilon == 0.0


def test_default_transform_lifts_a_1e_minus_17_block_to_unit_norm():
    grad = tf.constant(np.full((10, 10), 1e-18, np.float32))  # norm 1e-17
    variable = keras.Variable(np.ones((10, 10), np.float32), name="deep_kernel")
    (out,) = tf_bng.transform_gradients([grad], [variable], transform="ng")
    assert np.linalg.norm(out.numpy()) == pytest.approx(1.0, rel=1e-6)


def test_wrapper_saved_with_the_old_epsilon_keeps_it(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(
        optimizer=tf_bng.NormalizedOptimizer(keras.optimizers.SGD(0.1), epsilon=1e-7), loss="mse"
    )
    model.fit(np.ones((4, 3)), np.zeros((4, 2)), verbose=0)
    path = str(tmp_path / "old_default.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.optimizer.epsilon == pytest.approx(1e-7)
    config = loaded.optimizer.get_config()
    assert tf_bng.NormalizedOptimizer.from_config(config).epsilon == pytest.approx(1e-7)


# --- logged norms are true norms ---------------------------------------------------


@pytest.mark.parametrize("transform", ["none", "ng"])
@pytest.mark.parametrize("factor", [1e-25, 1e30])
@pytest.mark.slow  # trains or spawns: 25 s (make test-fast skips it)
def test_train_step_reports_the_true_norm_of_a_1e_minus_25_gradient(transform, factor):
    """grad_norm/<block> is read from these: 1e-25 must show as 1e-25, not 0."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(4, name="first"), keras.layers.Dense(1, name="last")]
    )
    x = np.random.default_rng(0).normal(size=(8, 6)).astype(np.float32)
    y = np.zeros((8, 1), np.float32)
    with tf.GradientTape() as tape:
        plain = tf.reduce_mean(tf.square(model(x)))
    unit = [g.numpy().astype(np.float64) for g in tape.gradient(plain, model.trainable_variables)]
    step = tf_bng.TrainStep(
        model=model,
        optimizer=keras.optimizers.SGD(0.0),
        global_batch_size=8,
        loss=lambda t, p: factor * tf.reduce_mean(tf.square(p - t), axis=-1),
        transform=transform,
    )
    norms = step.step((tf.constant(x), tf.constant(y))).block_norms
    expected = [
        np.sqrt(np.sum(unit[0] ** 2) + np.sum(unit[1] ** 2)) * factor,
        np.sqrt(np.sum(unit[2] ** 2) + np.sum(unit[3] ** 2)) * factor,
    ]
    assert len(step.block_names) == 2
    np.testing.assert_allclose(norms.numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize("traced", [False, True])
@pytest.mark.parametrize("name", ["l2", "l1", "max", "std"])
def test_blocks_of_every_magnitude_in_one_transform_are_each_exact(name, traced):
    """Blocks at 1e-30 and 1e20 (the cheap path fails for some norms) next to ordinary ones,
    all of one rule: each block comes out at unit norm and reports its own true norm,
    whichever path each of them took."""
    rng = np.random.default_rng(3)
    grads = [tf.constant(rng.normal(size=(4, 3)) * s, tf.float32) for s in (1e-30, 1.0, 1e-3, 1e20)]
    variables = [keras.Variable(np.ones((4, 3), np.float32), name=f"m{i}") for i in range(4)]
    bt = tf_bng.BlockTransform(transform="ng", norm=name, blocks="variable")
    out, norms = (tf.function(bt) if traced else bt)(grads, variables)
    for o, g, n in zip(out, grads, norms.numpy()):
        assert ref.block_norm(name, [o.numpy().astype(np.float64)]) == pytest.approx(1.0, rel=1e-6)
        assert n == pytest.approx(ref.block_norm(name, [g.numpy().astype(np.float64)]), rel=1e-6)
