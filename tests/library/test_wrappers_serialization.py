"""Wrapper configs, .keras save / load with optimizer state, custom norms across a reload."""

from __future__ import annotations

import json
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import max_abs_diff, seed_classification_data, seed_mlp, weights_of

from tf_bng.wrappers import AdaptiveNormalizedOptimizer, ClippedOptimizer, NormalizedOptimizer

CUSTOM_NORM = "wrappers_test_serialization_rms"


def rms(flat_block):
    return tf.sqrt(tf.reduce_mean(tf.square(flat_block)))


WRAPPERS = {
    "normalized-adam": lambda: NormalizedOptimizer(keras.optimizers.Adam(0.01), "l1"),
    "clipped-momentum": lambda: ClippedOptimizer(
        keras.optimizers.SGD(0.1, momentum=0.9),
        "max",
        clipnorm=0.3,
        blocks="variable",
        exclude=("bias",),
        epsilon=1e-6,
    ),
    "adaptive-rmsprop-schedule": lambda: AdaptiveNormalizedOptimizer(
        keras.optimizers.RMSprop(
            keras.optimizers.schedules.ExponentialDecay(0.05, decay_steps=10, decay_rate=0.9)
        ),
        alpha=0.05,
        normalization="avg_l2",
        blocks="global",
    ),
}


@pytest.mark.parametrize("name", sorted(WRAPPERS))
def test_serialize_deserialize_serialize_is_stable(name):
    original = WRAPPERS[name]()
    config = keras.saving.serialize_keras_object(original)
    restored = keras.saving.deserialize_keras_object(json.loads(json.dumps(config)))
    assert type(restored) is type(original)
    assert type(restored.inner_optimizer) is type(original.inner_optimizer)
    assert restored.transform_config == original.transform_config
    assert keras.saving.serialize_keras_object(restored) == config
    assert config["registered_name"] == f"tf_bng>{type(original).__name__}"


def test_config_carries_the_wrapper_settings():
    config = WRAPPERS["clipped-momentum"]().get_config()
    assert config["normalization"] == "max" and config["clipnorm"] == 0.3
    assert config["blocks"] == "variable" and config["exclude"] == ["bias"]
    assert config["epsilon"] == 1e-6
    assert config["optimizer"]["config"]["momentum"] == 0.9
    adaptive = WRAPPERS["adaptive-rmsprop-schedule"]().get_config()
    assert adaptive["alpha"] == 0.05 and "clipnorm" not in adaptive


def test_callable_blocks_cannot_be_saved():
    opt = NormalizedOptimizer(keras.optimizers.SGD(0.1), blocks=lambda v: v.path[:3])
    with pytest.raises(ValueError, match="callable `blocks`"):
        opt.get_config()


@pytest.fixture(scope="module")
def data():
    x, y = seed_classification_data(n=128)
    return x, y


def fit(model, data, epochs=1):
    x, y = data
    model.fit(x, y, epochs=epochs, batch_size=32, shuffle=False, verbose=0)


def assert_same_state(a, b):
    assert type(a.optimizer) is type(b.optimizer)
    assert type(a.optimizer.inner_optimizer) is type(b.optimizer.inner_optimizer)
    # Slot names differ after a reload (Keras prefixes the model path or not); order does not.
    state_a, state_b = a.optimizer.variables, b.optimizer.variables
    assert len(state_a) == len(state_b) >= 4  # wrapper + inner iteration and learning rate
    for va, vb in zip(state_a, state_b):
        assert va.shape == vb.shape
        np.testing.assert_array_equal(va.numpy(), vb.numpy(), err_msg=va.path)
    assert max_abs_diff(weights_of(a), weights_of(b)) == 0.0


@pytest.mark.parametrize("name", ["normalized-adam", "clipped-momentum"])
def test_keras_file_round_trip_restores_state_and_training_continues(name, data, tmp_path):
    model = seed_mlp()
    model.compile(WRAPPERS[name](), "sparse_categorical_crossentropy")
    fit(model, data)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert_same_state(model, loaded)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert int(loaded.optimizer.iterations) == 4
    # The restored optimizer continues exactly where the original was.
    fit(model, data)
    fit(loaded, data)
    assert int(loaded.optimizer.iterations) == 8
    assert max_abs_diff(weights_of(model), weights_of(loaded)) < 1e-6


def save_with_custom_norm(tmp_path, data):
    NormalizedOptimizer.set_normalization_function(CUSTOM_NORM, rms)
    model = seed_mlp()
    model.compile(
        NormalizedOptimizer(keras.optimizers.SGD(0.1), CUSTOM_NORM),
        "sparse_categorical_crossentropy",
    )
    fit(model, data)
    path = str(tmp_path / "custom.keras")
    model.save(path)
    return model, path


def test_custom_norm_registered_before_load_works(data, tmp_path):
    model, path = save_with_custom_norm(tmp_path, data)
    loaded = keras.saving.load_model(path)
    assert loaded.optimizer.normalization == CUSTOM_NORM
    assert_same_state(model, loaded)
    fit(loaded, data)
    assert int(loaded.optimizer.iterations) == 8


def rename_norm_in_keras_file(path, old, new):
    """Rewrite the saved config as if it came from a process that registered ``new``."""
    with zipfile.ZipFile(path) as src:
        members = {name: src.read(name) for name in src.namelist()}
    members["config.json"] = members["config.json"].replace(old.encode(), new.encode())
    with zipfile.ZipFile(path, "w") as dst:
        for name, content in members.items():
            dst.writestr(name, content)


def test_unregistered_norm_fails_with_a_message_to_register_it(data, tmp_path):
    _, path = save_with_custom_norm(tmp_path, data)
    rename_norm_in_keras_file(path, CUSTOM_NORM, "wrappers_test_never_registered")
    with pytest.raises(ValueError) as info:
        keras.saving.load_model(path)
    message = str(info.value)
    assert "'wrappers_test_never_registered'" in message
    assert "tf_bng.register_norm" in message and "set_normalization_function" in message
    assert "before keras.saving.load_model" in message
