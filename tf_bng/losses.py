"""Per-example losses for the distributed train step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf

__all__ = ["per_example_loss_fn"]


def per_example_loss_fn(loss: Any) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """Turn a Keras loss (name, class instance or function) into ``(y, pred) -> [batch]``.

    ``tf.nn.compute_average_loss`` wants unreduced per-example values; Keras
    ``Loss`` objects reduce by default, so they are rebuilt with reduction
    ``None``. Extra axes (tokens of a sequence) are averaged per example.

    Args:
        loss: A Keras loss name (``"sparse_categorical_crossentropy"``), a
            ``keras.losses.Loss`` instance or a function ``(y_true, y_pred) -> values``.

    Returns:
        ``(y_true, y_pred) -> [batch]`` per-example losses.

    Raises:
        TypeError: If ``loss`` is not callable (after looking a name up).
        ValueError: If ``loss`` is a name Keras does not know.
    """
    if isinstance(loss, str):
        loss = keras.losses.get(loss)
    if isinstance(loss, keras.losses.Loss):
        config = loss.get_config()
        config["reduction"] = None
        loss = loss.__class__.from_config(config)
    if not callable(loss):
        raise TypeError(f"loss must be a Keras loss, its name or a callable; got {loss!r}.")

    def fn(y_true, y_pred):
        values = tf.convert_to_tensor(loss(y_true, y_pred))
        if values.shape.rank is not None and values.shape.rank > 1:
            values = tf.reduce_mean(values, axis=list(range(1, values.shape.rank)))
        return values

    return fn
