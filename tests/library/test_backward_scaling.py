"""Per-layer backward scaling (issue 13): exact for ng/ng_adap, alive where backprop underflows."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import max_abs_diff

import tf_bng


def sigmoid_mlp(depth=3, seed=0, regularized=False):
    keras.utils.set_random_seed(seed)
    reg = keras.regularizers.L2(1e-3) if regularized else None
    layers = [
        keras.layers.Dense(6, activation="sigmoid", kernel_regularizer=reg, name=f"hidden{i + 1}")
        for i in range(depth)
    ]
    return keras.Sequential([keras.Input((5,)), *layers, keras.layers.Dense(3, name="out")])


def data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 5)).astype(np.float32), rng.integers(0, 3, n).astype(np.int32)


LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@pytest.fixture
def rescale_always(monkeypatch):
    """No band: every point rescales every signal, so exactness tests exercise the multiply.

    By default a float32 signal within 2**±32 of 1 is left alone, and the
    shallow nets below never leave that band.
    """
    monkeypatch.setattr(
        tf_bng.backward_scaling, "_BAND", {name: 0 for name in tf_bng.backward_scaling._BAND}
    )
    tf_bng.backward_scaling._exponent_table.cache_clear()
    yield
    tf_bng.backward_scaling._exponent_table.cache_clear()


def run(transform, scaling, strategy=None, steps=4, batch=16, **step_options):
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        model = sigmoid_mlp()
        optimizer = keras.optimizers.Adam(0.01)
    step = tf_bng.TrainStep(
        model=model,
        loss=LOSS,
        optimizer=optimizer,
        transform=transform,
        global_batch_size=batch,
        strategy=strategy,
        backward_scaling=scaling,
        **step_options,
    )
    x, y = data(batch * steps)
    dataset = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)
    )
    norms = [step.step(b)[1].numpy() for b in dataset]
    return model, step, norms


@pytest.mark.parametrize("transform", ["ng", "ng_adap"])
@pytest.mark.slow  # trains or spawns: 114 s (make test-fast skips it)
def test_update_equals_the_unscaled_one_where_nothing_underflows(transform, rescale_always):
    plain, _, plain_norms = run(transform, False)
    scaled, step, norms = run(transform, True)
    factors = [float(f.numpy()) for f in step.backward_scaling.points.factors]
    assert any(f != 1.0 for f in factors), factors  # the points did rescale the signal
    for a, b in zip(scaled.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(norms, plain_norms, rtol=1e-5)  # true norms are reported
    np.testing.assert_allclose(step.last_log10_norms.numpy(), np.log10(plain_norms[-1]), atol=1e-5)


@pytest.mark.slow  # trains or spawns: 42 s (make test-fast skips it)
def test_a_signal_inside_the_band_is_left_alone():
    """Default band: a healthy shallow net is not rescaled at all, so nothing changes (bitwise)."""
    plain, _, plain_norms = run("ng", False)
    scaled, step, norms = run("ng", True)
    assert [float(f.numpy()) for f in step.backward_scaling.points.factors] == [1.0] * 3
    for a, b in zip(scaled.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(norms, plain_norms)


def wide_model(seed=0):
    """One hidden layer of 4096 values per example: its signal takes the sum-of-squares path."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(4096, activation="tanh", name="wide"),
            keras.layers.Dense(3, name="out"),
        ]
    )


def run_wide(scaling, strategy=None, steps=3, batch=8):
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        model = wide_model()
        optimizer = keras.optimizers.Adam(0.01)
    step = tf_bng.TrainStep(
        model=model,
        loss=LOSS,
        optimizer=optimizer,
        transform="ng",
        global_batch_size=batch,
        strategy=strategy,
        backward_scaling=scaling,
    )
    x, y = data(batch * steps)
    dataset = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)
    )
    for b in dataset:
        step.step(b)
    return model, step


@pytest.mark.slow  # trains or spawns: 28 s (make test-fast skips it)
def test_large_signals_are_exact_and_agree_across_replicas(rescale_always, mirrored_strategy):
    plain, _ = run_wide(False)
    scaled, step = run_wide(True)
    assert float(step.backward_scaling.points.factors[0].numpy()) != 1.0
    for a, b in zip(scaled.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    mirrored, _ = run_wide(True, strategy=mirrored_strategy)
    assert max_abs_diff(mirrored.get_weights(), scaled.get_weights()) <= 2e-6


@pytest.mark.slow  # trains or spawns: 17 s (make test-fast skips it)
def test_mirrored_equals_one_device_with_backward_scaling(mirrored_strategy, rescale_always):
    single, *_ = run("ng", True)
    mirrored, *_ = run("ng", True, strategy=mirrored_strategy)
    assert max_abs_diff(mirrored.get_weights(), single.get_weights()) <= 2e-6


def attenuating_model(depth=16, dtype="float32"):
    """Every layer shrinks the backward signal ~1e-3 times: plain float32 backprop reaches 0."""
    keras.utils.set_random_seed(1)
    init = keras.initializers.RandomNormal(stddev=1e-4)
    layers = [
        keras.layers.Dense(8, kernel_initializer=init, name=f"layer{i + 1}", dtype=dtype)
        for i in range(depth)
    ]
    return keras.Sequential(
        [keras.Input((8,), dtype=dtype), *layers, keras.layers.Dense(2, name="out", dtype=dtype)]
    )


def _first_block_direction(model, x, y):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(LOSS(y, model(x)))
    kernel, bias = tape.gradient(loss, model.trainable_variables)[:2]
    flat = np.concatenate([np.ravel(kernel), np.ravel(bias)]).astype(np.float64)
    return flat / np.linalg.norm(flat)


@pytest.mark.slow  # trains or spawns: 51 s (make test-fast skips it)
def test_the_first_layer_learns_where_plain_backprop_underflows_to_zero():
    x = np.random.default_rng(0).normal(size=(8, 8)).astype(np.float32)
    y = np.zeros((8,), np.int32)
    runs = {}
    for scaling in (False, True):
        model = attenuating_model()
        step = tf_bng.TrainStep(
            model=model,
            loss=LOSS,
            optimizer=keras.optimizers.SGD(0.01),
            transform="ng",
            global_batch_size=8,
            backward_scaling=scaling,
        )
        before = model.get_weights()[0].copy()
        for _ in range(4):
            step.step((x, y))
        runs[scaling] = (model.get_weights()[0] - before, step)
    moved_plain, plain = runs[False]
    moved_scaled, scaled = runs[True]
    assert not np.any(moved_plain) and plain.last_norms.numpy()[0] == 0.0
    assert np.any(moved_scaled)
    log10_first = float(scaled.last_log10_norms.numpy()[0])
    assert np.isfinite(log10_first) and log10_first < -38  # far below float32's range
    # The scaled float32 gradient points where the float64 gradient does.
    model64 = attenuating_model(dtype="float64")
    model64.set_weights(scaled.model.get_weights())
    expected = _first_block_direction(model64, x.astype(np.float64), y)
    got = _first_block_direction(scaled.backward_scaling.forward_model, x, y)
    assert float(np.dot(got, expected)) > 1 - 1e-5


def test_refusals_name_the_setting():
    model = sigmoid_mlp()
    kwargs = dict(
        model=model,
        loss=LOSS,
        optimizer=keras.optimizers.SGD(0.1),
        global_batch_size=4,
        backward_scaling=True,
    )
    with pytest.raises(ValueError, match="'clip', which needs true magnitudes"):
        tf_bng.TrainStep(transform="clip", **kwargs)
    with pytest.raises(ValueError, match="max_scale or epsilon > 0"):
        tf_bng.TrainStep(transform=tf_bng.TransformConfig(transform="ng", epsilon=1e-7), **kwargs)
    with pytest.raises(ValueError, match="blocks='layer' or 'variable'"):
        tf_bng.TrainStep(
            transform=tf_bng.TransformConfig(transform="ng", blocks="global"), **kwargs
        )
    kwargs["model"] = sigmoid_mlp(regularized=True)
    with pytest.raises(ValueError, match="regularization losses"):
        tf_bng.TrainStep(transform="ng", **kwargs)


@pytest.mark.slow  # trains or spawns: 75 s (make test-fast skips it)
def test_accumulation_with_backward_scaling_equals_the_big_batch(rescale_always):
    """Micro-batches choose their own powers; the window sums them at one common factor."""
    big, _, _ = run("ng", False, steps=2, batch=16)
    micro, step, _ = run("ng", True, steps=2 * 4, batch=4, accumulation_steps=4)
    assert int(step.optimizer.iterations.numpy()) == 2
    assert max_abs_diff(micro.get_weights(), big.get_weights()) <= 2e-6


@pytest.mark.slow  # trains or spawns: 13 s (make test-fast skips it)
def test_resnet_points_sit_only_where_every_path_passes():
    model = tf_bng.models.cifar_resnet(depth=8, num_classes=10, input_shape=(8, 8, 3))
    _, points = tf_bng.backward_scaling.insert_scale_points(model)
    _, placed, calls = tf_bng.backward_scaling._functional_with_points(model)
    # after the stem conv's BatchNorm and at each block's output; a layer
    # without weights (relu, pooling) gets no point of its own
    assert [calls[i].name for _, i in placed] == [
        "stem_bn",
        "stage1_block1_add",
        "stage2_block1_add",
        "stage3_block1_add",
    ]
    assert len(points.layers) == 4
    inside = {v.path for v in model.trainable_variables if "block1_conv1" in v.path}
    conv1 = next(v for v in model.trainable_variables if v.path in inside)
    shortcut = [v for v in model.trainable_variables if "conv2" in v.path][0]
    # both layers of one residual block see the same points downstream
    assert points._downstream[id(conv1)] == points._downstream[id(shortcut)]


@pytest.mark.slow  # trains or spawns: 59 s (make test-fast skips it)
def test_user_placed_points_with_the_wrapper_in_fit_equal_no_points(rescale_always):
    x, y = data(64)

    def fit(with_points):
        keras.utils.set_random_seed(3)
        inputs = keras.Input((5,))
        h = keras.layers.Dense(6, activation="sigmoid", name="a")(inputs)
        if with_points:
            h = tf_bng.BackwardScale()(h)
        h = keras.layers.Dense(6, activation="sigmoid", name="b")(h)
        if with_points:
            h = tf_bng.BackwardScale()(h)
        model = keras.Model(inputs, keras.layers.Dense(3, name="c")(h))
        model.compile(optimizer=tf_bng.NormalizedOptimizer(keras.optimizers.SGD(0.1)), loss=LOSS)
        model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        return [w for w in model.get_weights() if w.shape != ()]  # the points' factors are scalars

    for a, b in zip(fit(True), fit(False)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def reference_exponent(signal: np.ndarray, dtype: str, large: bool, lagged: bool = False) -> float:
    """The power a point should apply, from float64 numpy: target - round(log2 magnitude).

    The magnitude is max |signal| (rounded half up in log2), or for a large
    float32/float64 signal its l2 norm where float32's sum of squares can
    hold it (2**-100 .. 2**127), read off the sum's exponent. 0 inside the
    band (2**-32..2**32 around the target; 2**-16..2**32 for a lagged
    point) and for zeros; clamped to ±126.
    """
    target = {"float16": -6}.get(dtype, 0)
    band = {"float16": 0}.get(dtype, 32)
    low_edge = min(band, 16) if lagged else band
    assert np.all(np.isfinite(signal))
    x = np.abs(signal.astype(np.float64))
    if not np.any(x):
        return 0.0
    rounded_log2 = np.floor(np.log2(x.max()) + 0.5)
    if large:
        with np.errstate(over="ignore"):
            half_sum = 0.5 * float(np.sum(x * x))
        lowest = 2.0**-100 if dtype == "float32" else 2.0**-900
        highest = 2.0**127 if dtype == "float32" else 2.0**1023
        if lowest <= half_sum < highest:
            rounded_log2 = np.floor((np.floor(np.log2(half_sum)) + 2) / 2)
    exponent = float(np.clip(target - rounded_log2, -126, 126))
    return 0.0 if -band <= exponent <= low_edge else exponent


def smallest_at_least_sqrt2(dtype):
    """The smallest value of ``dtype`` whose square is >= 2, decided in exact rationals."""
    from fractions import Fraction

    value = np.sqrt(dtype(2))
    while Fraction(float(value)) ** 2 < 2:
        value = np.nextafter(value, dtype(2))
    while Fraction(float(np.nextafter(value, dtype(0)))) ** 2 >= 2:
        value = np.nextafter(value, dtype(0))
    return value


def rounded_log2(value, threshold):
    """round(log2 value), half up at sqrt(2), exactly: from frexp, not from a rounded log."""
    fraction, exponent = np.frexp(value)  # value = fraction * 2**exponent, fraction in [0.5, 1)
    return int(exponent) - 1 + int(2 * fraction >= threshold)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rounded_log2_from_the_bits_matches_an_exact_reference_over_the_whole_range(dtype):
    fmt = tf_bng.backward_scaling._format_of(tf.as_dtype(dtype))
    threshold = smallest_at_least_sqrt2(dtype)
    rng = np.random.default_rng(0)
    info = np.finfo(dtype)
    values = list(np.exp2(rng.uniform(np.log2(info.tiny), np.log2(info.max), 2000)).astype(dtype))
    for scale in (1.0, 2.0**-100, 2.0**100):  # the half-up boundary, and one ulp below it
        values += [dtype(threshold * scale), np.nextafter(dtype(threshold * scale), dtype(0))]
    for value in values:
        got = int(fmt.rounded_exponent(tf.constant(value, dtype))) - fmt.bias
        assert got == rounded_log2(value, threshold), value


def exponent_of(signal, lagged=False) -> float:
    """log2 of the factor a point applies to ``signal`` (exact: the factor is a power of two)."""
    return float(np.log2(float(tf_bng.backward_scaling.factor_for(signal, lagged=lagged))))


# 1e-5 and 3e-5 straddle the lagged band's low edge (round(log2) -17 and -15)
MAGNITUDES = [1e-300, 1e-40, 1e-30, 1e-12, 1e-8, 1e-5, 3e-5, 1.0, 1e12, 1e30, 1e300]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("values_per_example", [7, 4096])
@pytest.mark.parametrize("lagged", [False, True])
def test_the_power_matches_a_numpy_reference_over_the_whole_range(
    dtype, values_per_example, lagged
):
    rng = np.random.default_rng(values_per_example)
    base = rng.normal(size=(3, values_per_example))
    info = np.finfo(
        np.float16 if dtype == "float16" else np.float64 if dtype == "float64" else np.float32
    )
    large = values_per_example >= 4096 and dtype in ("float32", "float64")
    for magnitude in MAGNITUDES:
        # what the dtype can hold (float32 flushes subnormals on CPU, as TF does)
        if magnitude * 10 > float(info.max) or magnitude < float(info.tiny) * 1e3:
            continue
        signal = tf.cast(tf.constant(base * magnitude, tf.float64), dtype)
        got = exponent_of(signal, lagged)
        expected = reference_exponent(signal.numpy().astype(np.float64), dtype, large, lagged)
        assert got == expected, (magnitude, got, expected)
        if got and abs(got) < 126:  # the rescaled signal's magnitude lands at the target
            scaled = np.abs(signal.numpy().astype(np.float64)) * 2.0**got
            target = {"float16": -6}.get(dtype, 0)
            if large and expected != reference_exponent(signal.numpy(), dtype, False, lagged):
                norm = np.sqrt(np.sum(scaled * scaled))  # the norm path was taken
                assert 2.0 ** (target - 1) <= norm < 2.0 ** (target + 1)
            else:
                assert 2.0 ** (target - 0.5) <= scaled.max() < 2.0 ** (target + 0.5)


@pytest.mark.parametrize("values_per_example", [7, 4096])
def test_zero_empty_and_non_finite_signals(values_per_example):
    """Zero passes unchanged; an empty replica is fine; inf/NaN stay non-finite."""
    exponent_for = exponent_of
    assert float(exponent_for(tf.zeros([2, values_per_example]))) == 0.0
    assert np.isfinite(float(exponent_for(tf.zeros([0, values_per_example]))))
    for fill in (np.inf, np.nan):
        signal = np.full((2, values_per_example), 1e-20, np.float32)
        signal[0, 0] = fill
        exponent = float(exponent_for(tf.constant(signal)))
        assert np.isfinite(exponent) and exponent <= 0.0  # the guard skips such a step
        assert not np.isfinite(signal[0, 0] * 2.0**exponent)


def test_float16_signal_aims_low():
    signal = tf.constant([3e-7, -1e-6], tf.float16)  # subnormal in float16
    exponent = exponent_of(signal)
    assert 2.0**-6.5 <= 1e-6 * 2.0**exponent < 2.0**-5.5


@pytest.mark.slow  # trains or spawns: 57 s (make test-fast skips it)
def test_mixed_float16_first_layer_keeps_a_gradient_where_plain_float16_loses_it():
    x = np.random.default_rng(0).normal(size=(8, 8)).astype(np.float32)
    y = np.zeros((8,), np.int32)
    policy = keras.config.dtype_policy()
    moved = {}
    for scaling in (False, True):
        keras.config.set_dtype_policy("mixed_float16")
        try:
            model = attenuating_model(depth=6, dtype=None)  # ~3e-4 per layer: 1e-21 at layer 1
        finally:
            keras.config.set_dtype_policy(policy)
        step = tf_bng.TrainStep(
            model=model,
            loss=LOSS,
            optimizer=keras.optimizers.SGD(0.01),
            transform="ng",
            global_batch_size=8,
            backward_scaling=scaling,
            loss_scale=tf_bng.step.DynamicLossScale(initial_scale=1.0),
        )
        before = model.get_weights()[0].copy()
        for _ in range(3):
            step.step((x, y))
        moved[scaling] = np.abs(model.get_weights()[0] - before).max()
    assert moved[False] == 0.0 and moved[True] > 0.0


def test_points_follow_layers_with_weights_and_their_batch_norm():
    model = tf_bng.models.mlp(depth=3, batch_norm=True, dropout=0.1)
    _, placed, calls = tf_bng.backward_scaling._functional_with_points(model)
    assert [calls[i].name for _, i in placed] == ["hidden1_bn", "hidden2_bn", "hidden3_bn"]
    paper = tf_bng.models.mlp(depth=3)
    _, placed, calls = tf_bng.backward_scaling._functional_with_points(paper)
    assert [calls[i].name for _, i in placed] == ["hidden1", "hidden2", "hidden3"]


def test_the_point_rescales_the_gradient_of_a_watched_tensor():
    rng = np.random.default_rng(0)
    for shape in [(4, 7), (2, 4096)]:
        x = tf.constant(rng.normal(size=shape) * 1e-20, tf.float32)
        weights = tf.constant(rng.normal(size=shape), tf.float32)
        layer = tf_bng.BackwardScale()
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x) * weights * 1e-20)
        grad = tape.gradient(loss, x).numpy()  # the backward pass sets the factor
        factor = float(layer.factor.numpy())
        assert factor > 2.0**60  # the signal (~1e-20) was rescaled
        np.testing.assert_array_equal(grad, (weights * 1e-20).numpy() * np.float32(factor))


@pytest.mark.slow  # trains or spawns: 137 s (make test-fast skips it)
def test_a_replica_without_examples_does_not_choose_the_factor(rescale_always, mirrored_strategy):
    """An uneven last batch leaves one replica empty: its max (-inf) must count as zero."""
    assert exponent_of(tf.zeros([0, 7])) == 0.0
    assert exponent_of(tf.zeros([0, 4096])) == 0.0
    x, y = data(3)

    def train(strategy):
        with strategy.scope():
            model = sigmoid_mlp()
            optimizer = keras.optimizers.Adam(0.01)
        step = tf_bng.TrainStep(
            model=model,
            loss=LOSS,
            optimizer=optimizer,
            transform="ng",
            global_batch_size=2,
            strategy=strategy,
            backward_scaling=True,
        )
        dataset = strategy.experimental_distribute_dataset(
            tf.data.Dataset.from_tensor_slices((x, y)).batch(2)
        )
        norms = [step.step(b)[1].numpy() for b in dataset]  # batches of 2, then 1
        return model, norms

    single, single_norms = train(tf.distribute.get_strategy())
    mirrored, mirrored_norms = train(mirrored_strategy)
    assert np.all(np.isfinite(mirrored_norms[-1])) and np.all(mirrored_norms[-1] > 0)
    np.testing.assert_allclose(mirrored_norms, single_norms, rtol=1e-5)
    assert max_abs_diff(mirrored.get_weights(), single.get_weights()) <= 2e-6


def shared_layer_model(seed=0):
    """One Dense called twice: its gradient sums two contributions."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((5,))
    shared = keras.layers.Dense(5, activation="sigmoid", name="shared")
    h = shared(inputs)
    h = keras.layers.Dense(5, activation="sigmoid", name="mid")(h)
    h = shared(h)
    return keras.Model(inputs, keras.layers.Dense(3, name="out")(h))


@pytest.mark.slow  # trains or spawns: 35 s (make test-fast skips it)
def test_no_point_separates_two_calls_of_one_layer(rescale_always):
    _, placed, calls = tf_bng.backward_scaling._functional_with_points(shared_layer_model())
    assert [(calls[i].name, i) for _, i in placed] == [("shared", 2)]  # after its second call
    x, y = data(32)
    weights = {}
    for scaling in (False, True):
        model = shared_layer_model()
        step = tf_bng.TrainStep(
            model=model,
            loss=LOSS,
            optimizer=keras.optimizers.Adam(0.01),
            transform="ng",
            global_batch_size=16,
            backward_scaling=scaling,
        )
        for start in (0, 16):
            step.step((x[start : start + 16], y[start : start + 16]))
        weights[scaling] = model.get_weights()
    for a, b in zip(weights[True], weights[False]):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_an_output_that_feeds_another_layer_gets_no_point_below_its_consumers():
    inputs = keras.Input((4,))
    a = keras.layers.Dense(4, name="a")(inputs)
    b = keras.layers.Dense(4, name="b")(a)
    c = keras.layers.Dense(2, name="c")(b)
    model = keras.Model(inputs, [c, a])  # the loss reads a directly, jumping over b
    _, placed, calls = tf_bng.backward_scaling._functional_with_points(model)
    assert [calls[i].name for _, i in placed] == ["a"]  # both of a's paths pass this point


def test_times_power_of_two_is_exact_and_never_nan_at_any_factor():
    """Exact where the result is normal; TF on CPU flushes subnormal results to 0 (so does this)."""
    values = np.array([0.0, 1.5, 3e-38, 3e38, 1.2e-38], np.float32)
    for log2 in (-1000.0, -378.0, -300.0, -130.0, 0.0, 7.0, 130.0, 300.0, 378.0, 1000.0):
        got = tf_bng.backward_scaling.times_power_of_two(
            tf.constant(values), tf.constant(log2)
        ).numpy()
        with np.errstate(over="ignore", under="ignore"):
            expected = np.ldexp(values.astype(np.float64), int(log2)).astype(np.float32)
        expected[np.abs(expected) < np.finfo(np.float32).tiny] = 0.0
        np.testing.assert_array_equal(got, expected)


def scaled_chain(dtype: str, layer_dtypes=None):
    """x -> Dense(I) -> point -> Dense(2**10 I) -> point -> Dense(I): signals known exactly."""
    gains = (1.0, 2.0**10, 1.0)
    layer_dtypes = layer_dtypes or (dtype,) * 3
    layers = [
        keras.layers.Dense(
            3,
            use_bias=False,
            dtype=layer_dtype,
            name=f"dense{i}",
            kernel_initializer=keras.initializers.Constant(np.eye(3) * g),
        )
        for i, (g, layer_dtype) in enumerate(zip(gains, layer_dtypes))
    ]
    model = keras.Sequential([keras.Input((3,), dtype=dtype), *layers])
    scaled, points = tf_bng.backward_scaling.insert_scale_points(model)
    assert len(points.layers) == 2
    return scaled, points


@pytest.mark.parametrize("traced", [True, False])
def test_chained_points_apply_the_factor_chosen_above_one_layer_late(rescale_always, traced):
    scaled, points = scaled_chain("float32")
    top_signal = np.array([[2.0**-20, -(2.0**-21), 0.0]], np.float32)  # dL/d(output), max 2**-20

    def kernel_gradient():
        with tf.GradientTape() as tape:
            out = scaled(tf.ones([1, 3]))
            loss = tf.reduce_sum(out * top_signal)
        return tape.gradient(loss, scaled.get_layer("dense0").kernel)

    grad = (tf.function(kernel_gradient) if traced else kernel_gradient)()
    lower, upper = (float(p.factor.numpy()) for p in points.layers)
    # The top point brings its own signal (2**-20, through Dense(I)) to 2**0; the lower point
    # applies the factor chosen for the top point's output, already at 2**0, i.e. 1, and not
    # the 2**-10 its own signal (2**10 larger, through Dense(2**10 I)) would ask for.
    assert upper == 2.0**20 and lower == 1.0
    expected = np.outer(np.ones(3), top_signal[0] * 2.0**10) * upper * lower
    np.testing.assert_array_equal(grad.numpy(), expected)


def test_a_lagged_point_lifts_a_vanishing_signal_from_two_to_the_minus_16():
    """Default band: 2**-20 is inside the top point's band (2**±32), so it is left alone, but the
    point below, which acts one layer late, lifts it: its band starts at 2**-16."""
    scaled, points = scaled_chain("float32")
    top_signal = np.array([[2.0**-20, 0.0, 0.0]], np.float32)

    @tf.function
    def backward():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(scaled(tf.ones([1, 3])) * top_signal)
        return tape.gradient(loss, scaled.get_layer("dense0").kernel)

    grad = backward()
    lower, upper = (float(p.factor.numpy()) for p in points.layers)
    assert upper == 1.0 and lower == 2.0**20
    np.testing.assert_array_equal(grad.numpy()[:, 0], np.full(3, 2.0**-20 * 2.0**10 * 2.0**20))


def test_float16_points_choose_from_their_own_signal():
    """float16 has no room for a one-layer lag: every point is same-batch."""
    scaled, points = scaled_chain("float16")
    top_signal = tf.constant([[2.0**-10, 0.0, 0.0]], tf.float16)

    @tf.function
    def backward():
        with tf.GradientTape() as tape:
            out = scaled(tf.ones([1, 3], tf.float16))
            loss = tf.reduce_sum(out * top_signal)
        return tape.gradient(loss, scaled.get_layer("dense0").kernel)

    backward()
    lower, upper = (float(p.factor.numpy()) for p in points.layers)
    assert upper == 2.0**4  # 2**-10 -> 2**-6, float16's target
    assert lower == 2.0**-10  # its own signal is 2**10 * 2**-6


@pytest.mark.slow  # trains or spawns: 19 s (make test-fast skips it)
def test_float16_accumulation_sums_the_micro_batches_at_one_factor():
    """mixed_float16, two micro-batches whose losses differ by 2**-8 (sample weights): their points
    choose powers 2**8 apart, and the window brings both to one factor before summing, so the
    first layer's update points where the float64 gradient of the whole window does."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 8)).astype(np.float32)
    y = np.repeat([0, 1], 8).astype(np.int32)
    weights = np.repeat([1.0, 2.0**-8], 8).astype(np.float32)
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = attenuating_model(depth=4, dtype=None)  # ~1e-12 at layer 1: float16 loses it
    finally:
        keras.config.set_dtype_policy(policy)
    before = model.get_weights()
    step = tf_bng.TrainStep(
        model=model,
        loss=LOSS,
        optimizer=keras.optimizers.SGD(0.01),
        transform="ng",
        global_batch_size=8,
        backward_scaling=True,
        accumulation_steps=2,
        loss_scale=tf_bng.step.DynamicLossScale(initial_scale=1.0),
    )
    for half in (slice(0, 8), slice(8, 16)):
        step.step((x[half], y[half], weights[half]))
    assert int(step.optimizer.iterations.numpy()) == 1 and int(step.bad_steps.total.numpy()) == 0
    moved = [a - b for a, b in zip(model.get_weights()[:2], before[:2])]
    got = -np.concatenate([np.ravel(m) for m in moved]).astype(np.float64)
    model64 = attenuating_model(depth=4, dtype="float64")
    model64.set_weights(before)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(LOSS(y, model64(x.astype(np.float64)), sample_weight=weights))
    kernel, bias = tape.gradient(loss, model64.trainable_variables)[:2]
    expected = np.concatenate([np.ravel(kernel), np.ravel(bias)])
    cosine = np.dot(got, expected) / (np.linalg.norm(got) * np.linalg.norm(expected))
    assert cosine > 0.99, cosine


def test_a_float16_point_below_a_float32_one_chooses_from_its_own_signal():
    """A float32 layer inside a float16 net: the float16 point below it ignores the lagged
    float32 factor handed down and aims at float16's own target."""
    scaled, points = scaled_chain("float16", layer_dtypes=("float16", "float32", "float32"))
    top_signal = tf.constant([[2.0**-4, 0.0, 0.0]], tf.float32)

    @tf.function
    def backward():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(scaled(tf.ones([1, 3], tf.float16)) * top_signal)
        return tape.gradient(loss, scaled.get_layer("dense0").kernel)

    backward()
    lower, upper = (float(p.factor.numpy()) for p in points.layers)
    assert upper == 1.0  # float32 2**-4: inside the band
    assert lower == 2.0**-12  # float16 2**6 (after Dense(2**10 I)) brought to 2**-6


def test_every_replica_applies_the_factor_handed_down_in_its_own_thread(
    rescale_always, mirrored_strategy
):
    """MirroredStrategy traces each replica in its own thread: each one's lower point applies
    the factor its own upper point chose (1 here), not the 2**-10 a same-batch point would."""
    with mirrored_strategy.scope():
        scaled, _ = scaled_chain("float32")
    top_signal = np.array([[2.0**-20, -(2.0**-21), 0.0]], np.float32)

    def replica_gradient():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(scaled(tf.ones([1, 3])) * top_signal)
        return tape.gradient(loss, scaled.get_layer("dense0").kernel)

    per_replica = tf.function(lambda: mirrored_strategy.run(replica_gradient))()
    expected = np.outer(np.ones(3), top_signal[0] * 2.0**10) * 2.0**20  # upper 2**20, lower 1
    results = mirrored_strategy.experimental_local_results(per_replica)
    assert len(results) == 2
    for grad in results:
        np.testing.assert_array_equal(grad.numpy(), expected)
