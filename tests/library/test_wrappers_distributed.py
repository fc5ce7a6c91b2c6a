"""model.fit under MirroredStrategy (2 logical CPUs) equals the single-device run.

The wrappers transform the gradient summed over replicas. Keras's own
clipnorm / global_clipnorm clip each replica's partial gradient before Keras
sums them, so the same run differs: the last test shows it. If Keras ever
stopped summing inside ``optimizer.apply``, the wrappers' divide-by-replicas
would halve every step and the equality tests would fail.
"""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import max_abs_diff, weights_of

from tf_bng.wrappers import AdaptiveNormalizedOptimizer, ClippedOptimizer, NormalizedOptimizer

BATCH = 16  # 8 examples per replica
_KEY_BASES = itertools.count(1)


@pytest.fixture(autouse=True)
def unique_collective_keys():
    """Give each MirroredStrategy of this module its own collective group key.

    Every MirroredStrategy in a process starts at group key 1 and instance key
    100; TensorFlow caches a collective's shape by those keys, so a strategy
    that reuses them for other shapes fails ("Shape mismatch in the collective
    instance 100"). Runs before the conftest's strategy fixture is built.
    """
    tf.distribute.MirroredStrategy._collective_key_base = 10_000 + 1_000 * next(_KEY_BASES)


def replica_skewed_data(n=64, seed=0):
    """In every batch the second half (replica 1's share) is 5x larger than the first."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype("float32")
    y = rng.integers(0, 2, n).astype("int32")
    x[(np.arange(n) % BATCH) >= BATCH // 2] *= 5.0
    return x, y


def small_model():
    keras.utils.set_random_seed(3)
    return keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(5, activation="tanh"), keras.layers.Dense(2)]
    )


def fit_under(strategy, make_optimizer):
    x, y = replica_skewed_data()
    with strategy.scope():
        model = small_model()
        model.compile(
            make_optimizer(), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        )
    w0 = weights_of(model)
    model.fit(x, y, epochs=2, batch_size=BATCH, shuffle=False, verbose=0)
    return w0, weights_of(model)


def single_vs_mirrored(mirrored_strategy, make_optimizer):
    w0_single, single = fit_under(tf.distribute.get_strategy(), make_optimizer)
    w0_mirrored, mirrored = fit_under(mirrored_strategy, make_optimizer)
    assert max_abs_diff(w0_single, w0_mirrored) == 0.0
    assert max_abs_diff(w0_single, single) > 1e-2  # it trained
    return max_abs_diff(single, mirrored)


@pytest.mark.parametrize(
    "make_optimizer",
    [
        lambda: NormalizedOptimizer(keras.optimizers.SGD(0.1)),
        lambda: ClippedOptimizer(keras.optimizers.Adam(0.01), "l2", clipnorm=0.1),
        lambda: AdaptiveNormalizedOptimizer(keras.optimizers.SGD(0.5, momentum=0.9), 0.02),
    ],
    ids=["ng-sgd", "clip-adam", "adap-momentum"],
)
def test_mirrored_fit_equals_single_device(mirrored_strategy, make_optimizer):
    assert mirrored_strategy.num_replicas_in_sync == 2
    assert single_vs_mirrored(mirrored_strategy, make_optimizer) <= 2e-6


def test_keras_global_clipnorm_differs_under_mirrored(mirrored_strategy):
    """Keras clips per replica before summing: the replica with small inputs is not clipped."""
    difference = single_vs_mirrored(
        mirrored_strategy, lambda: keras.optimizers.SGD(0.1, global_clipnorm=0.1)
    )
    assert difference > 1e-3
