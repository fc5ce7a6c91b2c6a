"""tf_bng.models: shapes, parameter counts, architecture details, one training step each."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_bng
from tf_bng import models
from tf_bng.data import DatasetSpec
from tf_bng.models.layers import ZeroPadShortcut

IMAGES = DatasetSpec(
    name="tiny_images",
    task="classification",
    input_shape=(8, 8, 3),
    num_classes=5,
    train_examples=8,
    eval_examples=8,
)
VECTORS = DatasetSpec(
    name="tiny_vectors",
    task="classification",
    input_shape=(12,),
    num_classes=4,
    train_examples=8,
    eval_examples=8,
)
TOKENS = DatasetSpec(
    name="tiny_lm",
    task="language_model",
    input_shape=(6,),
    num_classes=11,
    train_examples=8,
    eval_examples=8,
    input_dtype="int32",
)
SENTENCES = DatasetSpec(
    name="tiny_text",
    task="classification",
    input_shape=(7,),
    num_classes=2,
    train_examples=8,
    eval_examples=8,
    vocab_size=13,
    input_dtype="int32",
)
QUADRATIC = DatasetSpec(
    name="quadratic",
    task="quadratic",
    input_shape=(1,),
    num_classes=1,
    train_examples=4,
    eval_examples=4,
)

# (model config, spec, expected output shape for a batch of 2)
CASES = {
    "mlp": (dict(name="mlp", depth=3, width=6), VECTORS, (2, 4)),
    "deep_mlp": (dict(name="deep_mlp", depth=4, width=6), VECTORS, (2, 4)),
    "cifar_resnet": (dict(name="cifar_resnet", depth=8, shortcut="A"), IMAGES, (2, 5)),
    "cifar_resnet_b": (
        dict(name="cifar_resnet", depth=8, shortcut="B", weight_decay=1e-4),
        IMAGES,
        (2, 5),
    ),
    # depth 18 traces twice as fast; the 34-layer network is checked by its parameter count.
    "preact_resnet34": (dict(name="preact_resnet34", depth=18, base_width=2), IMAGES, (2, 5)),
    "lstm_lm": (dict(name="lstm_lm", embedding_dim=5, hidden_size=4), TOKENS, (2, 6, 11)),
    "kim_cnn": (dict(name="kim_cnn", embedding_dim=4, num_filters=3), SENTENCES, (2, 2)),
    "quadratic": (dict(name="quadratic", dim=5), QUADRATIC, (2,)),
}


def tiny_batch(spec: DatasetSpec, batch: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    shape = (batch,) + spec.input_shape
    if spec.input_dtype == "int32":
        x = rng.integers(0, spec.vocab_size or spec.num_classes, shape).astype(np.int32)
    else:
        x = rng.normal(size=shape).astype(np.float32)
    if spec.task == "quadratic":
        return np.zeros((batch, 1), np.float32), np.zeros(batch, np.float32)
    y_shape = (batch,) + (spec.input_shape if spec.task == "language_model" else ())
    return x, rng.integers(0, spec.num_classes, y_shape).astype(np.int32)


def trainable_count(model) -> int:
    return sum(int(np.prod(v.shape)) for v in model.trainable_variables)


def test_models_lists_every_model():
    assert set(models.MODELS) == {c[0]["name"] for c in CASES.values()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_model_builds_and_outputs_the_right_shape(case):
    config, spec, expected = CASES[case]
    model = models.build_model(config, spec=spec)
    assert model.built
    x, _ = tiny_batch(spec, 2)
    out = model(x, training=False)
    assert tuple(out.shape) == expected
    assert out.dtype == tf.float32
    paths = [v.path for v in model.weights]
    assert len(paths) == len(set(paths)), "variable paths collide"


# The ResNets' training step is traced by tests/application/test_configs.py, which trains
# cifar_resnet (option A) and preact_resnet34 through their configs: tracing them here
# again cost ~200 s. Option B (with torch-style weight decay) is trained by no config.
TRAINED_BY_A_CONFIG = ("cifar_resnet", "preact_resnet34")


@pytest.mark.parametrize("case", sorted(set(CASES) - set(TRAINED_BY_A_CONFIG)))
@pytest.mark.slow  # trains or spawns: ~140 s (make test-fast skips it)
def test_model_trains_one_step_with_finite_loss(case):
    config, spec, _ = CASES[case]
    keras.utils.set_random_seed(0)
    model = models.build_model(config, spec=spec)
    before = [v.numpy() for v in model.trainable_variables]
    step = tf_bng.TrainStep(
        model=model,
        loss=models.default_loss(spec),
        optimizer=keras.optimizers.SGD(0.1),
        transform="ng",
        global_batch_size=4,
    )
    loss, norms = step.step(tiny_batch(spec, 4, seed=1))[:2]
    assert np.isfinite(float(loss))
    assert len(norms) == len(step.block_names) > 0 and np.all(np.isfinite(norms))
    changed = [not np.array_equal(b, v.numpy()) for b, v in zip(before, model.trainable_variables)]
    assert any(changed)


def cifar_resnet_trainable_params(n: int, classes: int = 10) -> int:
    """He et al.'s option-A CIFAR ResNet-(6n+2), counted by hand (no conv biases)."""
    convs = 3 * 3 * 3 * 16
    bn = 2 * 16
    for c_in, c_out in ((16, 16), (16, 32), (32, 64)):
        convs += 3 * 3 * c_in * c_out + (2 * n - 1) * 3 * 3 * c_out * c_out
        bn += 2 * n * 2 * c_out
    return convs + bn + 64 * classes + classes


@pytest.mark.parametrize("depth, paper_millions", [(20, 0.27), (110, 1.7)])
@pytest.mark.slow  # trains or spawns: 19 s (make test-fast skips it)
def test_cifar_resnet_parameter_count_matches_he_et_al(depth, paper_millions):
    model = models.cifar_resnet(depth, num_classes=10)
    count = trainable_count(model)
    assert count == cifar_resnet_trainable_params((depth - 2) // 6)
    assert abs(count / (paper_millions * 1e6) - 1) < 0.02
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) + 1 == depth  # option A adds no convolution; + the final Dense


def test_preact_resnet34_has_21_8m_parameters_and_preactivated_blocks():
    model = models.build_model(
        dict(name="preact_resnet34"),
        spec=DatasetSpec(
            name="imagenet2012",
            task="classification",
            input_shape=(64, 64, 3),
            num_classes=1000,
            train_examples=1,
            eval_examples=1,
        ),
    )
    assert abs(trainable_count(model) / 21.8e6 - 1) < 0.01
    names = {layer.name for layer in model.layers}
    assert "stage2_block1_shortcut_conv" in names and "stage1_block1_preact_bn" not in names
    assert {"stage1_block2_preact_bn", "final_bn"} <= names
    projections = [n for n in names if n.endswith("shortcut_conv")]
    assert sorted(projections) == [f"stage{s}_block1_shortcut_conv" for s in (2, 3, 4)]


def test_option_a_shortcut_subsamples_and_zero_pads_channels():
    x = np.random.default_rng(0).normal(size=(2, 5, 6, 3)).astype(np.float32)
    out = np.asarray(ZeroPadShortcut(8, 2)(x))
    expected = np.zeros((2, 3, 3, 8))
    expected[..., :3] = x[:, ::2, ::2, :]
    np.testing.assert_array_equal(out, expected)


def test_strided_conv_is_centred_on_the_subsampled_grid():
    model = models.cifar_resnet(8, num_classes=2, input_shape=(8, 8, 1))
    conv = model.get_layer("stage2_block1_conv1")
    sub = keras.Model(model.get_layer("stage2_block1_conv1_pad").input, conv.output)
    kernel = np.zeros(conv.kernel.shape, np.float32)
    kernel[1, 1, 0, 0] = 1.0  # the centre tap copies input channel 0
    conv.kernel.assign(kernel)
    x = np.random.default_rng(1).normal(size=(1, 8, 8, 16)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(sub(x))[0, :, :, 0], x[0, ::2, ::2, 0], atol=1e-6)


def test_mlp_matches_the_paper_and_the_seed():
    paper = models.build_model(
        dict(name="mlp", depth=18),
        spec=DatasetSpec(
            name="mnist5k",
            task="classification",
            input_shape=(784,),
            num_classes=10,
            train_examples=1,
            eval_examples=1,
        ),
    )
    dense = [layer for layer in paper.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.units for layer in dense] == [100] * 18 + [10]
    assert all(layer.activation is keras.activations.sigmoid for layer in dense[:-1])
    assert not paper.losses

    seed = models.build_model(dict(name="deep_mlp"), spec=VECTORS)
    kinds = [type(layer).__name__ for layer in seed.layers[1:4]]
    assert kinds == ["Dense", "BatchNormalization", "Dropout"]
    assert sum(isinstance(layer, keras.layers.Dense) for layer in seed.layers) == 31
    assert seed.get_layer("hidden1_dropout").rate == 0.2
    assert len(seed.losses) == 30  # l2 on the hidden kernels


def test_weight_decay_is_torch_style():
    model = models.cifar_resnet(8, num_classes=2, input_shape=(4, 4, 1), weight_decay=1e-2)
    kernel = model.get_layer("stem_conv").kernel
    with tf.GradientTape() as tape:
        penalty = tf.add_n(model.losses)
    grad = tape.gradient(penalty, kernel)
    np.testing.assert_allclose(np.asarray(grad), 1e-2 * np.asarray(kernel, np.float64), rtol=1e-5)


@pytest.mark.slow  # trains or spawns: 14 s (make test-fast skips it)
def test_kim_cnn_keeps_output_weights_within_max_norm():
    model = models.build_model(dict(name="kim_cnn", num_filters=3, max_norm=0.5), spec=SENTENCES)
    step = tf_bng.TrainStep(
        model=model,
        loss=models.default_loss(SENTENCES),
        optimizer=keras.optimizers.SGD(100.0),
        global_batch_size=4,
    )
    step.step(tiny_batch(SENTENCES, 4))
    kernel = np.asarray(model.get_layer("logits").kernel, np.float64)
    assert np.linalg.norm(kernel, axis=0).max() <= 0.5 + 1e-5


def test_logits_stay_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = models.mlp(2, num_classes=3, input_shape=(4,), width=5)
        assert model.get_layer("hidden1").compute_dtype == "float16"
        assert model(np.ones((1, 4), np.float32)).dtype == tf.float32
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_bad_names_and_depths_name_the_valid_choices():
    with pytest.raises(ValueError, match="cifar_resnet"):
        models.build_model(dict(name="vgg"), spec=IMAGES)
    with pytest.raises(ValueError, match="6n\\+2"):
        models.cifar_resnet(21)
    with pytest.raises(ValueError, match="images"):
        models.build_model(dict(name="cifar_resnet"), spec=VECTORS)
