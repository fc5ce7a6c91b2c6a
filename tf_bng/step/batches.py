"""What a batch looks like to the steps: ``(x, y[, sample_weight])`` or a dict; float32 losses."""

from __future__ import annotations

import tensorflow as tf

__all__ = ["unpack_batch", "to_float32"]


def unpack_batch(batch):
    """``(x, y, sample_weight or None)`` of a batch given as a tuple or a dict.

    Args:
        batch: ``(x, y)``, ``(x, y, sample_weight)`` or a dict with ``"x"``, ``"y"`` and
            optionally ``"sample_weight"``.

    Returns:
        ``(x, y, sample_weight)``; ``sample_weight`` is None when the batch has none.

    Raises:
        ValueError: ``batch`` has none of those forms.
    """
    if isinstance(batch, dict):
        return batch["x"], batch["y"], batch.get("sample_weight")
    if isinstance(batch, (tuple, list)):
        if len(batch) == 2:
            return batch[0], batch[1], None
        if len(batch) == 3:
            return tuple(batch)
    raise ValueError("A batch must be (x, y), (x, y, sample_weight) or a dict with 'x' and 'y'.")


def to_float32(pred):
    """Losses of float16/bfloat16 outputs (mixed precision) are computed in float32.

    Args:
        pred: A model output (tensor or anything without a float16/bfloat16 dtype).

    Returns:
        ``pred`` cast to float32 if it was float16/bfloat16, else ``pred`` itself.
    """
    dtype = getattr(pred, "dtype", None)
    if dtype is not None and tf.as_dtype(dtype) in (tf.float16, tf.bfloat16):
        return tf.cast(pred, tf.float32)
    return pred
