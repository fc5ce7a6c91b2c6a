"""Wrong inputs to the library fail at once with an error naming the culprit (issue 19).

Bad batch sizes, integer or misordered gradients, (gradient, variable) pairs,
transforms with nothing to do (a warning, once), and a NaN batch under the
``model.fit`` wrappers (skipped and counted, as TrainStep does).
"""

from __future__ import annotations

import os
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import seed_classification_data, seed_mlp

import tf_bng

LEGACY_KERAS = os.path.join(
    os.path.dirname(os.path.dirname(__file__)), "data", "saved_0.1.0", "normalized_sgd.keras"
)


def _dense(name: str, units: int = 3) -> keras.Model:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(units, name=name)])
    return model


@pytest.mark.parametrize("size", [0, -8, 2.5])
def test_train_step_rejects_a_batch_size_below_one_or_fractional(size):
    model = _dense("d")
    with pytest.raises(ValueError, match="global_batch_size must be"):
        tf_bng.TrainStep(
            model=model,
            loss="mse",
            optimizer=keras.optimizers.SGD(0.1),
            transform="ng",
            global_batch_size=size,
        )


def test_integer_gradients_are_a_type_error_naming_the_variable():
    model = _dense("ints")
    kernel, bias = model.trainable_variables
    grads = [tf.ones(kernel.shape, tf.int32), tf.zeros(bias.shape)]
    with pytest.raises(TypeError, match=r"variable '.*ints/kernel'.*dtype int32"):
        tf_bng.transform_gradients(grads, [kernel, bias], transform="ng")


@pytest.mark.parametrize(
    "dtype, scale",
    [
        ("float32", 1e-30),
        ("float32", 1e30),
        ("bfloat16", 1e-30),
        ("bfloat16", 1e30),
        ("float16", 1e-6),  # float16's subnormal range
        ("float16", 1e4),
    ],
)
def test_float_gradients_of_every_width_and_magnitude_pass_the_checks(dtype, scale):
    model = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(3, name=f"d_{dtype}", dtype=dtype)]
    )
    variables = model.trainable_variables
    grads = [tf.cast(tf.fill(v.shape, scale), dtype) for v in variables]
    out = tf_bng.transform_gradients(grads, variables, transform="ng")
    assert [g.dtype.name for g in out] == [dtype, dtype]
    norm = np.sqrt(sum(float(tf.reduce_sum(tf.cast(g, tf.float64) ** 2)) for g in out))
    assert norm == pytest.approx(1.0, rel=1e-2)  # the layer's block normalized


def test_gradients_in_the_wrong_order_are_a_value_error_naming_the_variable():
    model = _dense("order")
    kernel, bias = model.trainable_variables
    grads = [tf.zeros(bias.shape), tf.ones(kernel.shape)]  # swapped
    with pytest.raises(ValueError, match=r"shape \(3,\) but variable '.*order/kernel'.*order"):
        tf_bng.transform_gradients(grads, [kernel, bias], transform="ng")
    with pytest.raises(ValueError, match="Got 1 gradients for 2 variables"):
        tf_bng.transform_gradients(grads[:1], [kernel, bias], transform="ng")


def test_gradient_variable_pairs_are_a_type_error_saying_what_to_pass():
    model = _dense("pairs")
    variables = model.trainable_variables
    grads = [tf.ones(v.shape) for v in variables]
    for call in (
        lambda: tf_bng.transform_gradients(list(zip(grads, variables)), transform="ng"),
        lambda: tf_bng.transform_gradients(list(zip(grads, variables)), variables, transform="ng"),
    ):
        with pytest.raises(TypeError, match="pass the gradients and the variables as two lists"):
            call()
    # The right call still works and normalizes the layer's block to norm 1.
    out = tf_bng.transform_gradients(grads, variables, transform="ng")
    assert np.sqrt(sum(float(tf.reduce_sum(g * g)) for g in out)) == pytest.approx(1.0, abs=1e-6)


def _user_warnings(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, UserWarning)]


def test_a_transform_with_nothing_to_do_warns_once():
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for _ in range(2):
            assert tf_bng.transform_gradients([], [], transform="ng") == []
    assert _user_warnings(record) == [
        "The block transform got no variables: the model has no trainable variables, so "
        "nothing is trained."
    ]

    model = _dense("excluded_all")
    variables = model.trainable_variables
    grads = [tf.ones(v.shape) for v in variables]
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for _ in range(3):
            out = tf_bng.transform_gradients(grads, variables, transform="ng", exclude="excluded")
    messages = _user_warnings(record)
    assert len(messages) == 1 and "Every variable is excluded" in messages[0], messages
    np.testing.assert_array_equal(out[0].numpy(), grads[0].numpy())  # untouched

    model = _dense("pattern")
    variables = model.trainable_variables
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for _ in range(2):
            tf_bng.transform_gradients(
                [tf.ones(v.shape) for v in variables], variables, transform="ng", exclude="biass$"
            )
    messages = _user_warnings(record)
    assert len(messages) == 1, messages
    assert "exclude pattern 'biass$' matches no variable path" in messages[0]
    assert "pattern/kernel" in messages[0]


def _nan_data():
    x, y = seed_classification_data(n=160)
    x = x.copy()
    x[50:70] = np.nan  # half of batch 2 and half of batch 3 (batch size 20, no shuffle)
    return x, y


def _fit(optimizer, x, y) -> keras.Model:
    model = seed_mlp(seed=0)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=20, epochs=1, shuffle=False, verbose=0)
    return model


def test_wrappers_skip_a_nan_batch_count_it_and_save_the_count(tmp_path, capfd):
    x, y = _nan_data()
    optimizer = tf_bng.NormalizedOptimizer(keras.optimizers.Adam(1e-2))
    model = _fit(optimizer, x, y)
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert optimizer.bad_steps.counts() == (2, 0)  # two in a row, then applied ones
    assert int(optimizer.iterations.numpy()) == 8 - 2  # skipped updates do not step Adam
    assert capfd.readouterr().err.count("skipped an update with a non-finite gradient") == 2

    # Without batches 2 and 3 the weights are the same: a skipped update changes nothing.
    reference = tf_bng.NormalizedOptimizer(keras.optimizers.Adam(1e-2))
    keep = np.concatenate([np.arange(0, 40), np.arange(80, 160)])
    expected = _fit(reference, x[keep], y[keep])
    for got, want in zip(model.get_weights(), expected.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)

    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.optimizer.skip_nonfinite is True
    assert loaded.optimizer.bad_steps.counts() == (2, 0)


def test_skip_nonfinite_false_keeps_keras_behaviour():
    x, y = _nan_data()
    model = _fit(tf_bng.NormalizedOptimizer(keras.optimizers.SGD(0.1), skip_nonfinite=False), x, y)
    assert not all(np.isfinite(w).all() for w in model.get_weights())


def test_an_old_keras_file_loads_with_skipping_on_and_its_optimizer_state():
    model = keras.saving.load_model(LEGACY_KERAS)
    optimizer = model.optimizer
    assert optimizer.skip_nonfinite is True and optimizer.bad_steps.counts() == (0, 0)
    # Its optimizer state was loaded (not skipped for a variable-count mismatch).
    assert int(optimizer.iterations.numpy()) > 0


def test_under_mirrored_a_nan_batch_is_zeroed_counted_once_and_reported_once(
    mirrored_strategy, capfd
):
    x, y = _nan_data()
    with mirrored_strategy.scope():
        optimizer = tf_bng.NormalizedOptimizer(keras.optimizers.SGD(0.1))
        model = _fit(optimizer, x, y)
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert optimizer.bad_steps.counts() == (2, 0)
    # The update is applied as zeros there (the inner all-reduce cannot sit in a cond).
    assert int(optimizer.iterations.numpy()) == 8
    assert capfd.readouterr().err.count("skipped an update with a non-finite gradient") == 2
