"""Shared data and models for the wrapper tests (no tests here).

The data is the keras seed's test set: Keras 2's ``get_test_data`` with 1,000
samples, 10 features and 2 classes, each sample drawn around its label.
"""

from __future__ import annotations

import keras
import numpy as np


def seed_classification_data(n: int = 1000, seed: int = 1337):
    rng = np.random.RandomState(seed)
    y = rng.randint(0, 2, size=n).astype("int32")
    x = rng.normal(loc=y[:, None], scale=0.7, size=(n, 10)).astype("float32")
    return x, y


def seed_mlp(seed: int = 0, hidden: int = 10) -> keras.Model:
    """The seed's Dense(10)-ReLU-Dense(2)-softmax classifier."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((10,)),
            keras.layers.Dense(hidden),
            keras.layers.Activation("relu"),
            keras.layers.Dense(2),
            keras.layers.Activation("softmax", dtype="float32"),
        ]
    )


def loss_and_accuracy(model: keras.Model, x, y) -> tuple[float, float]:
    """Training loss and accuracy of ``model`` on ``(x, y)``, computed eagerly (no extra trace)."""
    probs = np.asarray(model(x, training=False), np.float64)
    loss = -np.mean(np.log(probs[np.arange(len(y)), y] + 1e-12))
    return float(loss), float(np.mean(np.argmax(probs, axis=1) == y))


def weights_of(model: keras.Model) -> list[np.ndarray]:
    return [np.array(w) for w in model.weights]


def max_abs_diff(a, b) -> float:
    return max(float(np.max(np.abs(np.asarray(u) - np.asarray(v)))) for u, v in zip(a, b))
