"""Partitions of real Keras models: every trainable variable in exactly one block.

The reference "layer" partition walks the model's layers by object identity
(numpy_reference.layer_blocks); the library derives it from variable paths.
"""

import keras
import numpy as np
import numpy_reference as ref
import pytest
import tensorflow as tf

import tf_bng

APPLICATIONS = {
    "mobilenet_v2": lambda: keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=10
    ),
    "resnet50": lambda: keras.applications.ResNet50(
        input_shape=(32, 32, 3), weights=None, classes=10
    ),
}


@pytest.fixture(scope="module", params=list(APPLICATIONS))
def application(request):
    return APPLICATIONS[request.param]()


def _each_variable_once(part, n_variables):
    members = sorted(i for ix in part.blocks for i in ix)
    assert members == list(range(n_variables))
    assert len(set(part.names)) == len(part.names)


def _assert_layer_partition_is_the_reference(model):
    variables = model.trainable_variables
    part = tf_bng.partition_variables(variables, "layer")
    _each_variable_once(part, len(variables))
    assert len(part) == len(ref.layers_owning_variables(model))
    assert ref.as_set(part.blocks) == ref.as_set(ref.layer_blocks(model, variables))


@pytest.mark.slow  # trains or spawns: 16 s (make test-fast skips it)
def test_application_layer_blocks_are_its_layers(application):
    _assert_layer_partition_is_the_reference(application)
    assert len(ref.layers_owning_variables(application)) > 50


def test_application_variable_and_global_blocks(application):
    variables = application.trainable_variables
    per_variable = tf_bng.partition_variables(variables, "variable")
    _each_variable_once(per_variable, len(variables))
    assert len(per_variable) == len(variables)
    one = tf_bng.partition_variables(variables, "global")
    assert one.blocks == (tuple(range(len(variables))),)


class GatedDense(keras.layers.Layer):
    """A custom layer owning a weight of its own and two sub-layers."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.value = keras.layers.Dense(units)
        self.gate = keras.layers.Dense(units, activation="sigmoid")

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(1,), initializer="ones", name="scale")

    def call(self, x):
        return self.scale * self.value(x) * self.gate(x)


def test_nested_sequential_and_custom_layer_get_one_block_per_innermost_layer():
    inputs = keras.Input((5,))
    stem = keras.Sequential([keras.layers.Dense(4), keras.layers.BatchNormalization()], name="stem")
    x = stem(inputs)
    x = GatedDense(3, name="gated")(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    _assert_layer_partition_is_the_reference(model)
    assert len(ref.layers_owning_variables(model)) == 6  # stem: 2, gated: itself + 2, head: 1


def _backbone(name):
    inputs = keras.Input((4,))
    x = keras.layers.Dense(3, name="conv")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3, use_bias=False, name="head")(x), name=name)


@pytest.fixture(scope="module")
def twin_backbones():
    """Two functional backbones with the same layer names, plus a head reusing one."""
    inputs = keras.Input((4,))
    head = keras.layers.Dense(3, name="head")(inputs)
    out = keras.layers.Add()([_backbone("left")(inputs), _backbone("right")(inputs), head])
    model = keras.Model(inputs, out)
    paths = [v.path for v in model.trainable_variables]
    assert len(set(paths)) < len(paths), "Keras now scopes nested model paths: simplify blocks.py"
    return model


def test_same_named_layers_of_twin_backbones_get_separate_blocks(twin_backbones):
    _assert_layer_partition_is_the_reference(twin_backbones)
    assert len(ref.layers_owning_variables(twin_backbones)) == 5


def test_same_named_variables_of_twin_backbones_get_one_block_each(twin_backbones):
    variables = twin_backbones.trainable_variables
    part = tf_bng.partition_variables(variables, "variable")
    _each_variable_once(part, len(variables))
    assert len(part) == len(variables)


def test_twin_backbones_are_normalized_per_layer(twin_backbones):
    variables = twin_backbones.trainable_variables
    grads = [tf.fill(v.shape, 3.0) for v in variables]
    out = tf_bng.transform_gradients(grads, variables, transform="ng")
    for ix in ref.layer_blocks(twin_backbones, variables):
        unit = np.sqrt(sum(float(tf.reduce_sum(tf.square(out[i]))) for i in ix))
        assert unit == pytest.approx(1.0, rel=1e-5)


# --- skip, exclude, callables, plain tf.Variables ------------------------------


def test_none_gradients_and_exclusions_leave_the_other_blocks_intact(application):
    variables = application.trainable_variables
    skip = tuple(range(0, len(variables), 7))
    part = tf_bng.partition_variables(variables, "layer", exclude=r"/gamma$", skip=skip)
    excluded = [i for i, v in enumerate(variables) if v.path.endswith("/gamma") and i not in skip]
    assert list(part.excluded) == excluded and excluded
    drop = set(skip) | set(excluded)
    expected = ref.blocks_for("layer", application, variables, drop)
    assert ref.as_set(part.blocks) == ref.as_set(expected)


def test_callable_blocks_group_by_the_returned_key(application):
    variables = application.trainable_variables

    def by_kind(v):
        return v.path.rsplit("/", 1)[-1]

    part = tf_bng.partition_variables(variables, by_kind)
    _each_variable_once(part, len(variables))
    assert set(part.names) == {by_kind(v) for v in variables}
    assert ref.as_set(part.blocks) == ref.as_set(ref.keyed_blocks(variables, by_kind))


def test_plain_tf_variables_are_grouped_by_their_name_prefix():
    variables = [
        tf.Variable(np.ones((2, 2)), name="enc/dense/kernel"),
        tf.Variable(np.ones(2), name="enc/dense/bias"),
        tf.Variable(np.ones(2), name="enc/out/kernel"),
    ]
    part = tf_bng.partition_variables(variables, "layer")
    assert part.blocks == ((0, 1), (2,))
    assert part.names == ("enc/dense", "enc/out")
    out = tf_bng.transform_gradients(
        [tf.ones((2, 2), tf.float64), tf.ones(2, tf.float64), tf.ones(2, tf.float64)],
        variables,
        transform="ng_adap",
        alpha=0.5,
    )
    # block 1: m = sqrt(6), n = sqrt(6): scale 0.5 (up to eps)
    np.testing.assert_allclose(out[0].numpy(), 0.5 * np.ones((2, 2)), rtol=1e-6)
