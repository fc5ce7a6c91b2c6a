"""Synchronized BatchNorm (``synchronized_batch_norm``): a mirrored run trains like one device.

Unsynchronized, Keras's BatchNorm normalizes each replica's half of the batch with that half's
statistics and keeps one copy of the moving statistics per replica; synchronized, the statistics
are all-reduced, so two replicas on a global batch train like one device on it. The equivalence
model has BatchNorm and no dropout (dropout masks differ between one and two replicas anyway).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_bng import models
from tf_bng.data import DatasetSpec
from tf_bng.models.layers import resolve_synchronized_batch_norm

GLOBAL_BATCH = 16
STEPS = 4
FEATURES = 6


def _mlp(synchronized: bool | None) -> keras.Model:
    return models.mlp(
        depth=2,
        width=5,
        activation="tanh",
        batch_norm=True,
        input_shape=(FEATURES,),
        num_classes=3,
        synchronized_batch_norm=synchronized,
    )


def _data() -> list[tuple[np.ndarray, np.ndarray]]:
    """Global batches whose two halves have different statistics (per-replica BN differs)."""
    rng = np.random.default_rng(0)
    batches = []
    for _ in range(STEPS):
        x = rng.normal(size=(GLOBAL_BATCH, FEATURES)).astype(np.float32)
        x[GLOBAL_BATCH // 2 :] = 3.0 * x[GLOBAL_BATCH // 2 :] + 1.0
        batches.append((x, rng.integers(0, 3, GLOBAL_BATCH).astype(np.int32)))
    return batches


def _initial_weights() -> list[np.ndarray]:
    keras.utils.set_random_seed(3)
    return _mlp(False).get_weights()


def _train(strategy: tf.distribute.Strategy, synchronized: bool, weights) -> dict:
    """The textbook custom step (tape, global-batch mean loss, ``optimizer.apply``)."""
    with strategy.scope():
        model = _mlp(synchronized)
        model.set_weights(weights)
        optimizer = keras.optimizers.SGD(learning_rate=0.5)
        optimizer.build(model.trainable_variables)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)

    def replica_step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.nn.compute_average_loss(
                loss_fn(y, model(x, training=True)), global_batch_size=GLOBAL_BATCH
            )
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)

    step = tf.function(lambda batch: strategy.run(replica_step, args=batch))
    for batch in _data():
        dataset = tf.data.Dataset.from_tensors(batch)
        step(next(iter(strategy.experimental_distribute_dataset(dataset))))
    values = {}
    for variable in model.weights:
        copies = [c.numpy() for c in strategy.experimental_local_results(variable.value)]
        values[variable.path] = copies
    return values


def _max_diff(run: dict, reference: dict, keyword: str = "") -> float:
    """Largest |difference| over every replica's copy of the variables whose path has keyword."""
    return max(
        float(np.max(np.abs(copy - reference[path][0])))
        for path, copies in run.items()
        if keyword in path
        for copy in copies
    )


@pytest.fixture(scope="module")
def single_device_run():
    return _train(tf.distribute.get_strategy(), False, _initial_weights())


def test_synchronized_mirrored_run_equals_one_device(mirrored_strategy, single_device_run):
    weights = _initial_weights()
    start = {v.path: [w] for v, w in zip(_mlp(False).weights, weights)}
    mirrored = _train(mirrored_strategy, True, weights)
    assert _max_diff(single_device_run, start) > 1e-2, "the run must actually train"
    assert _max_diff(single_device_run, start, "moving_") > 1e-2, "moving statistics must move"
    assert _max_diff(mirrored, single_device_run) <= 1e-5
    assert _max_diff(mirrored, single_device_run, "moving_") <= 1e-5


def test_unsynchronized_mirrored_run_differs(mirrored_strategy, single_device_run):
    """What the synchronized run fixes: without it weights and moving statistics drift apart."""
    mirrored = _train(mirrored_strategy, False, _initial_weights())
    assert _max_diff(mirrored, single_device_run, "kernel") > 1e-3
    moving = {p: c for p, c in mirrored.items() if "moving_mean" in p}
    replicas_apart = max(float(np.max(np.abs(c[1] - c[0]))) for c in moving.values())
    assert replicas_apart > 1e-2, "each replica keeps moving statistics of its own"


def test_none_means_on_under_more_than_one_replica(mirrored_strategy):
    assert resolve_synchronized_batch_norm(None) is False
    with mirrored_strategy.scope():
        assert resolve_synchronized_batch_norm(None) is True
        model = _mlp(None)
        assert resolve_synchronized_batch_norm(False) is False
    assert all(layer.synchronized for layer in _bn_layers(model))
    assert not any(layer.synchronized for layer in _bn_layers(_mlp(None)))


def _bn_layers(model: keras.Model) -> list:
    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


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
BN_MODELS = {
    "mlp": (dict(name="mlp", depth=2, width=4, batch_norm=True), VECTORS),
    "deep_mlp": (dict(name="deep_mlp", depth=2, width=4), VECTORS),
    "cifar_resnet": (dict(name="cifar_resnet", depth=8, shortcut="B"), IMAGES),
    "preact_resnet34": (dict(name="preact_resnet34", depth=18, base_width=4), IMAGES),
}


@pytest.mark.parametrize("name", sorted(BN_MODELS))
def test_the_setting_changes_no_variable(name, tmp_path):
    """Checkpoints and .keras files written before still load: same paths, shapes and dtypes."""
    options, spec = BN_MODELS[name]
    plain = models.build_model(options, spec=spec, synchronized_batch_norm=False)
    synced = models.build_model(options, spec=spec, synchronized_batch_norm=True)
    assert _bn_layers(synced) and all(layer.synchronized for layer in _bn_layers(synced))
    assert not any(layer.synchronized for layer in _bn_layers(plain))

    def layout(model):
        return [(v.path, tuple(v.shape), v.dtype, v.trainable) for v in model.weights]

    assert layout(synced) == layout(plain)
    path = str(tmp_path / "plain.weights.h5")
    plain.save_weights(path)
    synced.load_weights(path)
    for a, b in zip(plain.get_weights(), synced.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_saved_synchronized_model_loads_and_keeps_the_setting(tmp_path):
    model = _mlp(True)
    path = str(tmp_path / "synced.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert all(layer.synchronized for layer in _bn_layers(loaded))
    x = np.random.default_rng(1).normal(size=(4, FEATURES)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("value", ["true", 1, 0.0])
@pytest.mark.parametrize("name", ["mlp", "cifar_resnet"])
def test_a_wrong_value_is_rejected_with_the_valid_choices(name, value):
    options, spec = BN_MODELS[name]
    with pytest.raises(ValueError, match=r"synchronized_batch_norm=.*True, False, None"):
        models.build_model(options, spec=spec, synchronized_batch_norm=value)
