"""model.compile / model.fit with the wrappers: every Keras optimizer trains, LR callbacks work."""

from __future__ import annotations

import inspect

import keras
import numpy as np
import pytest
from helpers import loss_and_accuracy, seed_classification_data, seed_mlp

from tf_bng.wrappers import AdaptiveNormalizedOptimizer, ClippedOptimizer, NormalizedOptimizer

NOT_PLAIN_OPTIMIZERS = {"Optimizer", "LossScaleOptimizer", "MultiOptimizer"}
INNER_CLASSES = sorted(
    name
    for name, obj in vars(keras.optimizers).items()
    if inspect.isclass(obj)
    and issubclass(obj, keras.optimizers.Optimizer)
    and name not in NOT_PLAIN_OPTIMIZERS
)
# Keras 3's Adadelta default (0.001) barely moves; the original method uses 1.0.
LEARNING_RATES = {"Adadelta": 1.0}


@pytest.fixture(scope="module")
def data():
    return seed_classification_data()


def fit_seed_model(optimizer, data, epochs=2, batch_size=32):
    """Train the seed's model; return it, the loss before / after and the final accuracy."""
    x, y = data
    model = seed_mlp()
    model.compile(optimizer, "sparse_categorical_crossentropy")
    before, _ = loss_and_accuracy(model, x, y)
    model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0)
    after, accuracy = loss_and_accuracy(model, x, y)
    return model, before, after, accuracy


def test_every_keras_optimizer_class_is_covered():
    assert {"SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Lion", "Muon"} <= set(INNER_CLASSES)


@pytest.mark.parametrize("inner_name", INNER_CLASSES)
@pytest.mark.slow  # trains or spawns: 58 s (make test-fast skips it)
def test_normalized_wraps_every_keras_optimizer(inner_name, data):
    inner = getattr(keras.optimizers, inner_name)(
        learning_rate=LEARNING_RATES.get(inner_name, 0.05)
    )
    model, before, after, accuracy = fit_seed_model(NormalizedOptimizer(inner, "l2"), data)
    assert after < 0.6 * before
    assert accuracy >= 0.75  # the seed's bar
    assert model.optimizer.inner_optimizer is inner and int(inner.iterations) == 2 * 32


@pytest.mark.parametrize(
    "optimizer",
    [
        lambda: ClippedOptimizer(keras.optimizers.Adam(0.01), "l2", clipnorm=0.1),
        lambda: ClippedOptimizer(keras.optimizers.SGD(0.1, momentum=0.9), "max", blocks="variable"),
        lambda: AdaptiveNormalizedOptimizer(keras.optimizers.SGD(1.0, momentum=0.9), 0.02),
        lambda: AdaptiveNormalizedOptimizer(  # LARS
            keras.optimizers.SGD(0.5, momentum=0.9), 0.02, exclude=("bias",)
        ),
    ],
    ids=["clip-adam", "clip-max-variable", "adap-momentum", "lars"],
)
@pytest.mark.slow  # trains or spawns: 67 s (make test-fast skips it)
def test_other_wrappers_reach_the_seed_accuracy(optimizer, data):
    _, before, after, accuracy = fit_seed_model(optimizer(), data)
    assert after < 0.6 * before
    assert accuracy >= 0.75


def inner_lr_per_epoch():
    """A callback recording the inner optimizer's learning rate at each epoch end."""
    seen = []

    class Record(keras.callbacks.Callback):
        """Reads the learning rate where the optimizer steps: the inner optimizer."""

        def on_epoch_end(self, epoch, logs=None):
            seen.append(float(self.model.optimizer.inner_optimizer.learning_rate))

    return seen, Record()


@pytest.mark.slow  # trains or spawns: 12 s (make test-fast skips it)
def test_learning_rate_scheduler_sets_the_inner_learning_rate(data):
    x, y = data
    model = seed_mlp()
    model.compile(NormalizedOptimizer(keras.optimizers.SGD(0.1)), "sparse_categorical_crossentropy")
    seen, record = inner_lr_per_epoch()
    scheduler = keras.callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1))
    model.fit(x[:128], y[:128], epochs=3, batch_size=64, verbose=0, callbacks=[scheduler, record])
    np.testing.assert_allclose(seen, [0.1, 0.05, 0.1 / 3], rtol=1e-6)


@pytest.mark.slow  # trains or spawns: 20 s (make test-fast skips it)
def test_reduce_lr_on_plateau_lowers_the_inner_learning_rate(data):
    x, y = data
    model = seed_mlp()
    model.compile(ClippedOptimizer(keras.optimizers.Adam(0.01)), "sparse_categorical_crossentropy")
    seen, record = inner_lr_per_epoch()
    # min_delta larger than any possible improvement: every epoch is a plateau.
    plateau = keras.callbacks.ReduceLROnPlateau(
        monitor="loss", factor=0.5, patience=0, min_delta=1e6, cooldown=0
    )
    model.fit(x[:128], y[:128], epochs=3, batch_size=64, verbose=0, callbacks=[plateau, record])
    assert seen[-1] < seen[0] < 0.01 + 1e-9
    assert float(model.optimizer.learning_rate) == pytest.approx(seen[-1])
