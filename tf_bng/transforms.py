"""Block-wise gradient transforms: NG, NGadap, per-block and global clipping.

One implementation, used by the custom train step, the Keras optimizer
wrappers and AdaGradBNG alike. Every transform multiplies all tensors of a
block by one scalar computed from the block's gradient norm ``n`` (and, for
NGadap, the same norm ``m`` of the block's variables):

=============  ======================================  ====================
transform      scale                                   special cases
=============  ======================================  ====================
``none``       1
``ng``         1 / (n + eps)                           n == 0 -> 1
``ng_adap``    alpha * m / (n + eps)                   n == 0 or m == 0 -> 1
``clip``       min(1, threshold / (n + eps))           n == 0 -> 1
``global_clip`` as ``clip`` with one block for all variables
=============  ======================================  ====================

``eps`` defaults to 0: a block is normalized whatever its norm (a layer whose
gradient is 1e-20 gets a unit-norm gradient, which is the point of NG); a
positive ``eps`` caps the gain at ``1/eps``. A block whose norm is exactly
zero passes through unchanged: it is never amplified (the keras seed
multiplied a constant tensor's gradient by 1e7 under ``std``). ``None``
gradients stay ``None`` and join no block. Norms and scales are exact over
the whole float range (see :class:`BlockTransform`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence

import numpy as np
import tensorflow as tf

from tf_bng import blocks as blocks_lib
from tf_bng import norms as norms_lib

__all__ = [
    "TRANSFORMS",
    "TransformConfig",
    "BlockTransform",
    "transform_gradients",
    "scale_gradient",
]

TRANSFORMS = ("none", "ng", "ng_adap", "clip", "global_clip")


def _check_choice(kind: str, value: Any, valid: Sequence[str]) -> None:
    if value not in valid:
        raise ValueError(f"Unknown {kind} {value!r}. Valid choices: {', '.join(map(repr, valid))}.")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TransformConfig:
    """Settings of a block transform; validated on construction."""

    transform: str = "none"
    norm: str = "l2"
    blocks: blocks_lib.BlockSpec = "layer"
    alpha: float = 0.02
    threshold: float = 1.0
    exclude: tuple[str, ...] = ()
    epsilon: float = 0.0

    def __post_init__(self):
        _check_choice("transform", self.transform, TRANSFORMS)
        norms_lib.get_norm(self.norm)  # raises with the registered names
        if not callable(self.blocks):
            _check_choice("blocks", self.blocks, blocks_lib.BLOCK_MODES)
        if isinstance(self.exclude, str):
            object.__setattr__(self, "exclude", (self.exclude,))
        else:
            object.__setattr__(self, "exclude", tuple(self.exclude))
        blocks_lib.compile_patterns(self.exclude)
        for name in ("alpha", "threshold"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value!r}.")
        if not self.epsilon >= 0:
            raise ValueError(f"epsilon must be >= 0, got {self.epsilon!r}.")

    @property
    def effective_blocks(self) -> blocks_lib.BlockSpec:
        return "global" if self.transform == "global_clip" else self.blocks


def _multiply(t: tf.Tensor, scale: tf.Tensor) -> tf.Tensor:
    """``t * scale``; half-precision tensors are multiplied in float32.

    A scale such as 1e5 does not fit in float16 (max 65504) even when the
    product does.
    """
    if t.dtype in (tf.float16, tf.bfloat16):
        return tf.cast(tf.cast(t, tf.float32) * tf.cast(scale, tf.float32), t.dtype)
    return t * tf.cast(scale, t.dtype)


def scale_gradient(grad, scale: tf.Tensor):
    """Multiply a dense or sparse (IndexedSlices) gradient by a scalar."""
    if isinstance(grad, tf.IndexedSlices):
        return tf.IndexedSlices(_multiply(grad.values, scale), grad.indices, grad.dense_shape)
    return _multiply(grad, scale)


def _scale_in(grad, dtype: tf.DType, *factors: tf.Tensor):
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


def _stack_float32(norms: Sequence[tf.Tensor]) -> tf.Tensor:
    if not norms:
        return tf.zeros([0], tf.float32)
    return tf.stack([tf.cast(n, tf.float32) for n in norms])


def _read(variable) -> tf.Tensor:
    """Current value of a Keras variable (``.value`` property) or a tf.Variable."""
    # tf.Variable.value is a method, keras.Variable.value a property; both convert.
    return tf.convert_to_tensor(variable)


def _safe_scale_range(dtype: tf.DType) -> tuple[float, float]:
    """Scales a single multiply may apply: far from under- and overflow (float32: ~1e-29..1e29)."""
    tiny = float(np.finfo(dtype.as_numpy_dtype).tiny)
    low = tiny ** 0.75
    return low, 1.0 / low


class BlockTransform:
    """A configured transform: ``(grads, variables) -> (grads, block_norms)``.

    The partition is computed on the first call for a given variable list and
    cached by variable identity (it is Python work done at trace time).

    Each block takes one of two paths, chosen by a ``tf.cond``: the cheap one
    (the norm as computed, one multiply per tensor) when the norm is trusted
    and the scale is far inside the dtype's range, else the exact one, which
    rescales the block by a power of two first (see :mod:`tf_bng.norms`) and
    so stays right for gradients anywhere between 1e-38 and 3e38.
    """

    def __init__(self, config: Optional[TransformConfig] = None, **kwargs):
        if config is None:
            config = TransformConfig(**kwargs)
        elif kwargs:
            raise TypeError("Pass either a TransformConfig or keyword settings, not both.")
        self.config = config
        self._norm = norms_lib.get_norm(config.norm)
        # id(variable) -> partition; each entry keeps its variables alive so
        # that their ids cannot be reused by the variables of another model.
        self._cache: dict[tuple, tuple[blocks_lib.Partition, tuple]] = {}

    def partition(self, variables: Sequence[Any], grads: Optional[Sequence[Any]] = None):
        skip = () if grads is None else tuple(i for i, g in enumerate(grads) if g is None)
        key = (tuple(id(v) for v in variables), skip)
        entry = self._cache.get(key)
        if entry is None:
            part = blocks_lib.partition_variables(
                variables, self.config.effective_blocks, self.config.exclude, skip=skip
            )
            entry = self._cache[key] = (part, tuple(variables))
        return entry[0]

    def block_norms(self, grads: Sequence[Any], variables: Sequence[Any]) -> tf.Tensor:
        """The norm of every block's gradient, as a 1-D float32 tensor."""
        part = self.partition(variables, grads)
        with tf.name_scope("block_norms"):
            return _stack_float32([self._norm([grads[i] for i in ix]) for ix in part.blocks])

    # -- one block ---------------------------------------------------------------
    def _cheap_scale(self, n: tf.Tensor, m: Optional[tf.Tensor]) -> tf.Tensor:
        """The scale from a trusted norm ``n > 0`` (and weight norm ``m > 0``)."""
        cfg = self.config
        eps = tf.cast(cfg.epsilon, n.dtype)
        if cfg.transform == "ng":
            return 1.0 / (n + eps)
        if cfg.transform == "ng_adap":
            return tf.cast(cfg.alpha, n.dtype) * m / (n + eps)
        if cfg.transform in ("clip", "global_clip"):
            return tf.minimum(tf.ones([], n.dtype), tf.cast(cfg.threshold, n.dtype) / (n + eps))
        raise AssertionError(cfg.transform)

    def _exact_block(self, grads: list, ts: list, variables: list):
        """The block's new gradients via the rescaled norm ``n = r / p``; returns (grads, n).

        ``g * scale`` is computed as ``(g * p) * c`` with ``c = scale / p``,
        both factors representable. A zero norm (or, for ng_adap, a zero
        weight norm) leaves the block unchanged.
        """
        cfg = self.config
        dtype = ts[0].dtype
        one = tf.ones([], dtype)
        rescaled = self._norm.rescaled(ts)
        r, p = rescaled.r, rescaled.p
        # eps * ||g|| units -> units of the rescaled block.
        denominator = r + tf.cast(cfg.epsilon, dtype) * p
        changed = r > 0
        if cfg.transform == "ng":
            c = one / denominator
        elif cfg.transform == "ng_adap":
            m = tf.cast(self._norm(dense_weights(variables)), dtype)
            changed = tf.logical_and(changed, m > 0)
            c = tf.cast(cfg.alpha, dtype) * m / denominator
        else:  # clip: scale < 1 iff threshold < n + eps, i.e. threshold * p < r + eps * p
            threshold = tf.cast(cfg.threshold, dtype)
            changed = tf.logical_and(changed, threshold * p < denominator)
            c = threshold / denominator
        first = tf.where(changed, p, one)
        second = tf.where(changed, c, one)
        return [_scale_in(g, dtype, first, second) for g in grads], rescaled.value

    def _transform_block(self, grads: list, variables: list):
        """New gradients of one block and its norm: the cheap path when it is exact."""
        ts = norms_lib.dense_block(grads)
        dtype = ts[0].dtype
        n, trusted = self._norm.cheap(ts)
        n = tf.cast(n, dtype)
        m = None
        if self.config.transform == "ng_adap":
            m, m_trusted = self._norm.cheap(dense_weights(variables))
            m = tf.cast(m, dtype)
            trusted = tf.logical_and(trusted, m_trusted)
        # Evaluated even when n is untrusted (then the cond discards it): it may be inf.
        scale = self._cheap_scale(n, m)
        low, high = _safe_scale_range(dtype)
        fast = tf.logical_and(trusted, tf.logical_and(scale >= low, scale <= high))
        return tf.cond(
            fast,
            lambda: ([scale_gradient(g, scale) for g in grads], n),
            lambda: _call_out_of_line(lambda g, t: self._exact_block(g, t, variables), grads, ts),
        )

    def __call__(
        self, grads: Sequence[Any], variables: Sequence[Any], *, with_norms: bool = True
    ) -> tuple[list, Optional[tf.Tensor]]:
        grads = list(grads)
        variables = list(variables)
        if len(grads) != len(variables):
            raise ValueError(f"Got {len(grads)} gradients for {len(variables)} variables.")
        if self.config.transform == "none":
            return grads, (self.block_norms(grads, variables) if with_norms else None)
        part = self.partition(variables, grads)
        out = list(grads)
        norms = []
        # Block by block rather than one vectorized scale computation over all
        # blocks: a block's scaling then waits only for its own gradients and
        # overlaps the rest of backprop.
        with tf.name_scope("block_transform"):
            for ix in part.blocks:
                new, n = self._transform_block([grads[i] for i in ix], [variables[i] for i in ix])
                for i, g in zip(ix, new):
                    out[i] = g
                norms.append(n)
            if not with_norms:
                return out, None
            return out, _stack_float32(norms)


def _call_out_of_line(fn, *args):
    """``fn(*args)`` as one function-call op, kept out of line.

    In a compiled step a ``tf.cond`` is lowered to Switch/Merge and the ops
    of the branch not taken still propagate "dead" tensors, one executor
    visit each. Behind a single call op the rarely taken exact path costs
    one visit per block instead of ~30.
    """
    if tf.executing_eagerly():
        return fn(*args)
    return tf.function(fn, experimental_attributes={"_noinline": True}, autograph=False)(*args)


def dense_weights(variables: Sequence[Any]) -> list[tf.Tensor]:
    """The current values of a block's variables, in the norm's compute dtype."""
    return norms_lib.dense_block([_read(v) for v in variables])


def transform_gradients(
    grads: Sequence[Any],
    variables: Sequence[Any],
    *,
    transform: str,
    norm: str = "l2",
    blocks: blocks_lib.BlockSpec = "layer",
    alpha: float = 0.02,
    threshold: float = 1.0,
    exclude: Sequence[str] = (),
    epsilon: float = 0.0,
) -> list:
    """Apply a block transform to ``grads`` (one per variable) and return the new list."""
    config = TransformConfig(
        transform=transform,
        norm=norm,
        blocks=blocks,
        alpha=alpha,
        threshold=threshold,
        exclude=tuple(exclude) if not isinstance(exclude, str) else (exclude,),
        epsilon=epsilon,
    )
    new_grads, _ = BlockTransform(config)(grads, variables, with_norms=False)
    return new_grads
