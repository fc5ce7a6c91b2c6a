"""Scalar-times-gradient arithmetic that stays exact over the float range.

Shared by every transform: multiplying by a scale (dense or sparse, half
precision in float32), multiplying by two factors one at a time, the range of
scales a single multiply may apply, and finiteness checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from tf_bng import norms as norms_lib

__all__ = ["scale_gradient", "all_finite", "dense_weights"]


def _multiply(t: tf.Tensor, scale: tf.Tensor) -> tf.Tensor:
    """``t * scale``; half-precision tensors are multiplied in float32.

    A scale such as 1e5 does not fit in float16 (max 65504) even when the
    product does.
    """
    if t.dtype in (tf.float16, tf.bfloat16):
        return tf.cast(tf.cast(t, tf.float32) * tf.cast(scale, tf.float32), t.dtype)
    return t * tf.cast(scale, t.dtype)


def scale_gradient(grad: Any, scale: tf.Tensor) -> Any:
    """Multiply a dense or sparse gradient by a scalar.

    Args:
        grad: A tensor or ``tf.IndexedSlices``.
        scale: A scalar tensor; half-precision gradients are multiplied in float32.

    Returns:
        ``grad * scale``, of ``grad``'s type and dtype.
    """
    if isinstance(grad, tf.IndexedSlices):
        return tf.IndexedSlices(_multiply(grad.values, scale), grad.indices, grad.dense_shape)
    return _multiply(grad, scale)


def scale_in(grad: Any, dtype: tf.DType, *factors: tf.Tensor) -> Any:
    """``grad * f1 * f2 ...`` computed in ``dtype``, one factor at a time.

    The factors are applied separately because their product may not be
    representable (2**-116 * 1e-4 underflows float32) while each partial
    result is.
    """

    def mul(t):
        out = tf.cast(t, dtype)
        for f in factors:
            out = out * tf.cast(f, dtype)
        return tf.cast(out, t.dtype)

    if isinstance(grad, tf.IndexedSlices):
        return tf.IndexedSlices(mul(grad.values), grad.indices, grad.dense_shape)
    return mul(grad)


def stack_float32(values: Sequence[tf.Tensor]) -> tf.Tensor:
    """Scalars as one 1-D float32 tensor (empty when there are none)."""
    if not values:
        return tf.zeros([0], tf.float32)
    return tf.stack([tf.cast(v, tf.float32) for v in values])


def safe_scale_range(dtype: tf.DType) -> tuple[float, float]:
    """Scales a single multiply may apply: far from under- and overflow (float32: ~1e-29..1e29)."""
    tiny = float(np.finfo(dtype.as_numpy_dtype).tiny)
    low = tiny**0.75
    return low, 1.0 / low


def all_finite(tensors: Sequence[Any]) -> tf.Tensor:
    """Whether every present tensor holds only finite values.

    Args:
        tensors: Tensors, ``tf.IndexedSlices`` or None (skipped).

    Returns:
        A scalar bool tensor; True when there is nothing to check.
    """
    checks = []
    for t in tensors:
        if t is None:
            continue
        values = t.values if isinstance(t, tf.IndexedSlices) else t
        checks.append(tf.reduce_all(tf.math.is_finite(values)))
    if not checks:
        return tf.constant(True)
    return checks[0] if len(checks) == 1 else tf.reduce_all(tf.stack(checks))


def dense_weights(variables: Sequence[Any]) -> list[tf.Tensor]:
    """The current values of a block's variables, in the norm's compute dtype.

    Args:
        variables: Keras or tf variables (``tf.convert_to_tensor`` reads either).

    Returns:
        The values as :func:`tf_bng.norms.dense_block` tensors.
    """
    return norms_lib.dense_block([tf.convert_to_tensor(v) for v in variables])


def call_out_of_line(fn, *args):
    """``fn(*args)`` as one function-call op, kept out of line.

    In a compiled step a ``tf.cond`` is lowered to Switch/Merge and the ops
    of the branch not taken still propagate "dead" tensors, one executor
    visit each. Behind a single call op the rarely taken exact path costs
    one visit per block instead of ~30.
    """
    if tf.executing_eagerly():
        return fn(*args)
    return tf.function(fn, experimental_attributes={"_noinline": True}, autograph=False)(*args)
