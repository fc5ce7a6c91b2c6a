"""Block norms against the float64 numpy reference; the registry; float16 blocks."""

import re

import keras
import numpy as np
import numpy_reference as ref
import pytest
import tensorflow as tf

import tf_bng

BUILTIN = tuple(ref.NORMS)


def _block(seed: int):
    """A block of three tensors of different shapes, one with negative mean."""
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(3, 4)), rng.normal(-2.0, 3.0, size=(5,)), rng.normal(size=(2, 2, 2))]


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_norm_matches_reference_over_the_whole_block(name):
    block = _block(0)
    got = tf_bng.get_norm(name)([tf.constant(t) for t in block]).numpy()
    np.testing.assert_allclose(got, ref.block_norm(name, block), rtol=1e-12)


@pytest.mark.parametrize("name", BUILTIN)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_many_blocks_at_once_match_the_reference_block_by_block(name, dtype):
    """``cheap_many`` (the vectorized transform's norms) over blocks from 1e-30 to 1e30:
    each value equals the float64 reference where it is trusted, and a block whose
    squares underflow or overflow float32 is flagged untrusted, not silently wrong."""
    blocks = [
        [t * magnitude for t in _block(seed)]
        for seed, magnitude in enumerate([1e-30, 1e-3, 1.0, 1e5, 1e30])
    ]
    values, trusted = tf_bng.get_norm(name).cheap_many(
        [[tf.constant(t, dtype) for t in b] for b in blocks]
    )
    for value, ok, block in zip(values.numpy(), trusted.numpy(), blocks):
        expected = ref.block_norm(name, [np.asarray(t, dtype) for t in block])
        if ok:
            np.testing.assert_allclose(value, expected, rtol=1e-5 if dtype == np.float32 else 1e-12)
    if dtype == np.float64:
        assert trusted.numpy().all()
    elif name in ("l2", "avg_l2", "std", "l1_l2", "avg_l1_l2"):
        assert not trusted.numpy()[0] and not trusted.numpy()[-1]  # squares leave float32


@pytest.mark.parametrize("name", BUILTIN)
def test_indexed_slices_with_repeated_indices_are_summed_first(name):
    values = np.arange(1.0, 13.0).reshape(4, 3) - 5.5
    indices = np.array([2, 0, 2, 2])
    slices = tf.IndexedSlices(tf.constant(values), tf.constant(indices), tf.constant([5, 3]))
    dense = ref.densify(slices)
    assert dense[2].tolist() == (values[0] + values[2] + values[3]).tolist()
    got = tf_bng.get_norm(name)([slices, tf.constant([0.5, -1.5], tf.float64)]).numpy()
    np.testing.assert_allclose(got, ref.block_norm(name, [dense, [0.5, -1.5]]), rtol=1e-12)


def test_a_block_may_mix_float64_and_float32_tensors():
    a, b = np.array([3.0, -4.0]), np.array([12.0], np.float32)
    got = tf_bng.get_norm("l2")([tf.constant(a), tf.constant(b)])
    assert got.dtype == tf.float64
    assert got.numpy() == pytest.approx(13.0, rel=1e-12)


@pytest.mark.parametrize("value", [0.1, 1 / 3, 7.77])
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_std_of_a_constant_block_is_exactly_zero(value, dtype):
    """A rounding residue (1e-17) would make NG amplify the block ~1e7 times."""
    block = [tf.fill([37, 53], tf.constant(value, dtype)), tf.fill([3], tf.constant(value, dtype))]
    assert tf_bng.get_norm("std")(block).numpy() == 0.0


# --- float16 (mixed precision) --------------------------------------------


@pytest.mark.parametrize("name", BUILTIN)
def test_float16_block_is_normed_in_float32_without_overflow(name):
    # 300**2 * 64 = 5.8e6 and 300 * 1000 = 3e5 both overflow float16 (max 65504).
    rng = np.random.default_rng(1)
    block = [np.full((1000,), 300.0), rng.uniform(-300, 300, size=(8, 8))]
    got = tf_bng.get_norm(name)([tf.constant(t, tf.float16) for t in block])
    assert got.dtype == tf.float32
    expected = ref.block_norm(name, [t.astype(np.float16) for t in block])
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize("transform", ["ng", "clip", "ng_adap"])
def test_float16_gradients_transform_to_finite_float16(transform):
    var = keras.Variable(np.full((10,), 2.0, np.float32), name="half_kernel")
    grad = tf.constant(np.full((10,), 300.0), tf.float16)  # sum of squares 9e5 > 65504
    out, norms = tf_bng.BlockTransform(transform=transform, norm="l2")([grad], [var])
    assert out[0].dtype == tf.float16
    assert np.all(np.isfinite(out[0].numpy()))
    assert norms.dtype == tf.float32
    np.testing.assert_allclose(norms.numpy(), [300.0 * np.sqrt(10)], rtol=1e-6)
    values = [np.full((10,), 2.0)]
    expected = ref.transform([np.full((10,), 300.0)], values, [[0]], transform=transform)
    np.testing.assert_allclose(out[0].numpy().astype(np.float64), expected[0], rtol=1e-3)


# --- registry ----------------------------------------------------------------


def _l3(flat):
    return tf.reduce_sum(tf.abs(flat) ** 3) ** (1.0 / 3.0)


def test_custom_norm_is_available_and_matches_reference():
    tf_bng.register_norm("test_norms_l3", _l3)
    assert "test_norms_l3" in tf_bng.available_norms()
    block = _block(2)
    got = tf_bng.get_norm("test_norms_l3")([tf.constant(t) for t in block]).numpy()
    expected = ref.block_norm(lambda x: np.sum(np.abs(x) ** 3) ** (1 / 3), block)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_available_norms_lists_every_builtin():
    assert set(BUILTIN) <= set(tf_bng.available_norms())


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_norm_cannot_be_overwritten(name):
    before = tf_bng.get_norm(name)
    with pytest.raises(ValueError, match="built-in"):
        tf_bng.register_norm(name, lambda flat: tf.constant(1.0, flat.dtype))
    assert tf_bng.get_norm(name) is before


def test_unknown_norm_error_names_the_registered_norms():
    with pytest.raises(ValueError) as err:
        tf_bng.get_norm("l7")
    for name in BUILTIN:
        assert re.search(rf"\b{name}\b", str(err.value)), name
    with pytest.raises(ValueError, match="avg_l1_l2"):
        tf_bng.TransformConfig(transform="ng", norm="l7")


@pytest.mark.parametrize("name", BUILTIN)
def test_many_blocks_of_mixed_dtypes_are_taken_in_the_widest(name):
    """float16 blocks are measured in float32 (as a single block is): a float16 block whose sum
    of squares exceeds float16's 65504 is still exact, next to a float32 block."""
    big = np.random.default_rng(1).normal(100.0, 10.0, size=(40, 40)).astype(np.float16)
    blocks = [[big], [np.linspace(-1.0, 2.0, 7).astype(np.float32)]]
    values, trusted = tf_bng.get_norm(name).cheap_many(
        [[tf.constant(t) for t in b] for b in blocks]
    )
    assert values.dtype == tf.float32 and trusted.numpy().all()
    for value, block in zip(values.numpy(), blocks):
        expected = ref.block_norm(name, [t.astype(np.float64) for t in block])
        np.testing.assert_allclose(value, expected, rtol=1e-6)
