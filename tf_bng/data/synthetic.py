"""Generated data: ``synthetic`` images for benchmarks and tests, ``quadratic`` dummies.

``synthetic`` keys: ``image_shape`` (default (32, 32, 3)), ``num_classes``
(10), ``train_examples`` (1024), ``eval_examples`` (256), ``data_seed`` (0).
Example ``i`` is drawn from the stateless seed ``(data_seed, split, i)``:
nothing is held in memory, so ImageNet-sized shapes cost no RAM, and the
same keys always give the same data.

``quadratic`` feeds :class:`tf_bng.problems.quadratic.QuadraticModel`, whose
output ignores its input: x = zeros[1], y = 0 per example, and one epoch is
one batch (``train_examples == batch_size``).
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from tf_bng.data.options import get_option, require_option
from tf_bng.data.pipeline import derived_seed, indexed_stream
from tf_bng.data.source import Source, limit_of
from tf_bng.data.spec import DatasetSpec

__all__ = ["SYNTHETIC", "QUADRATIC"]

_SPLIT_IDS = {"train": 0, "test": 1}


def _synthetic_counts(config: Any) -> dict:
    return {
        "train": int(get_option(config, "train_examples", 1024)),
        "test": int(get_option(config, "eval_examples", 256)),
    }


def _synthetic_spec(config: Any) -> DatasetSpec:
    counts = _synthetic_counts(config)
    return DatasetSpec(
        name="synthetic",
        task="classification",
        input_shape=tuple(get_option(config, "image_shape", (32, 32, 3))),
        num_classes=int(get_option(config, "num_classes", 10)),
        train_examples=counts["train"],
        eval_examples=counts["test"],
    )


def _synthetic_stream(config: Any, split: str, training: bool, seed: int) -> tf.data.Dataset:
    spec = _synthetic_spec(config)
    count = min(_synthetic_counts(config)[split], limit_of(config) or 2**62)
    data_seed = int(get_option(config, "data_seed", 0)) * len(_SPLIT_IDS) + _SPLIT_IDS[split]

    def example(index):
        image_seed = derived_seed(data_seed, 0, index)
        label_seed = derived_seed(data_seed, 1, index)
        x = tf.random.stateless_normal(spec.input_shape, seed=image_seed)
        y = tf.random.stateless_uniform(
            [], seed=label_seed, minval=0, maxval=spec.num_classes, dtype=tf.int32
        )
        return x, y

    return indexed_stream(count, example, training=training, seed=seed)


def _quadratic_spec(config: Any) -> DatasetSpec:
    batch_size = int(require_option(config, "batch_size"))
    return DatasetSpec(
        name="quadratic",
        task="quadratic",
        input_shape=(1,),
        num_classes=1,
        train_examples=batch_size,
        eval_examples=batch_size,
    )


def _quadratic_stream(config: Any, split: str, training: bool, seed: int) -> tf.data.Dataset:
    del split
    count = _quadratic_spec(config).train_examples
    return indexed_stream(
        count,
        lambda index: (tf.zeros([1], tf.float32), tf.zeros([], tf.float32)),
        training=training,
        seed=seed,
    )


SYNTHETIC = Source(spec=_synthetic_spec, stream=_synthetic_stream)
QUADRATIC = Source(spec=_quadratic_spec, stream=_quadratic_stream)
