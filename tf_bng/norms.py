"""Norms of a gradient block, accurate over the whole floating-point range.

A *block* is a list of tensors (for example a layer's kernel and bias); its norm
is taken over all of their elements together, as if they were one flat vector.
The built-in norms reduce each tensor separately and combine the partial
results, so no concatenated copy of the block is ever made.

Why two paths. A plain float32 sum of squares flushes every square below
~1.2e-38 to zero, so a block of 1e-20 gradients (a vanishing layer, the very
case NG exists for) gets norm 0, and a block of 1e20 gradients overflows to
inf. Each built-in norm therefore computes its value the cheap way and also
says whether that value is trustworthy (no square flushed beyond a 1e-7
share of the total, nothing overflowed). When it is not, the block is scaled
by an exact power of two ``2**-e`` that brings its largest element into
[1, 4), the norm ``r`` of the scaled block is taken, and the norm is
``r * 2**e``; both the value and the pair ``(2**-e, r)`` are available, so a
transform can compute its new gradient as ``(g * 2**-e) * c`` even where the
norm itself does not fit in the dtype (l1 of many 1e35 elements). The
rescaled path runs only under a ``tf.cond`` when needed.

Elements below the dtype's smallest normal number (float32: 1.18e-38) are
read as zero by TensorFlow's CPU kernels (denormals are flushed); they cannot
contribute to any norm here.

User norms are registered with :func:`register_norm` and receive the block as
one flat 1-D tensor (the concatenation). Like every norm they are assumed to
be absolutely homogeneous (``f(c*g) = |c| f(g)``): when a user norm returns
0, inf or NaN for a nonzero block it is recomputed on the power-of-two
rescaled block, which rescues the usual sum-of-powers underflow.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import tensorflow as tf

FlatNorm = Callable[[tf.Tensor], tf.Tensor]

__all__ = [
    "BlockNorm",
    "FlatNorm",
    "Rescaled",
    "register_norm",
    "get_norm",
    "available_norms",
    "compute_dtype",
    "dense_block",
]

# A cheap-path value is trusted when the squares it flushed can make up at most
# this share of the sum of squares (elements below sqrt(tiny) are flushed).
_FLUSH_SHARE = 1e-7


def compute_dtype(dtype: tf.DType) -> tf.DType:
    """float16/bfloat16 blocks are reduced in float32; wider floats as they are."""
    dtype = tf.as_dtype(dtype)
    return tf.float32 if dtype in (tf.float16, tf.bfloat16) else dtype


def dense_block(tensors: Sequence) -> list[tf.Tensor]:
    """Dense tensors in one common dtype, the widest compute dtype of the block.

    A block may mix dtypes (a float64 layer next to float32 ones under
    ``global``); the partial sums must agree on one dtype to be added.
    Converting IndexedSlices sums duplicate indices, as a norm requires.
    """
    ts = [tf.convert_to_tensor(t) for t in tensors]
    common = max((compute_dtype(t.dtype) for t in ts), key=lambda d: d.size)
    return [tf.cast(t, common) for t in ts]


def _num_elements(ts: Sequence[tf.Tensor], dtype: tf.DType) -> tf.Tensor:
    """Number of elements; a constant when the shapes are static (no Size ops in the step)."""
    static = [t.shape.num_elements() for t in ts]
    if all(n is not None for n in static):
        return tf.constant(float(max(sum(static), 1)), dtype)
    total = tf.add_n([tf.cast(tf.size(t), dtype) for t in ts])
    return tf.maximum(total, tf.ones([], dtype))


def _tiny(dtype: tf.DType) -> float:
    return float(np.finfo(dtype.as_numpy_dtype).tiny)


# --- partial reductions ---------------------------------------------------
# These run inside every train step, once per block: each TF op costs
# ~0.5-2 us of executor time on a 2-core CPU, so they avoid ops that do no
# arithmetic (a one-element Pack) and prefer one fused kernel per tensor.


def _combine(partials: list, reduce_fn) -> tf.Tensor:
    return partials[0] if len(partials) == 1 else reduce_fn(tf.stack(partials))


def _sum_abs(ts):
    return tf.add_n([tf.reduce_sum(tf.abs(t)) for t in ts])


def _sum_sq(ts):
    # L2Loss is one fused pass computing sum(t**2 / 2); Square + Sum would
    # write t**2 to memory and read it back. The doubling is exact.
    return 2.0 * tf.add_n([tf.nn.l2_loss(t) for t in ts])


def _max_abs(ts):
    return _combine([tf.reduce_max(tf.abs(t)) for t in ts], tf.reduce_max)


def _min_abs(ts):
    return _combine([tf.reduce_min(tf.abs(t)) for t in ts], tf.reduce_min)


def _normal(x: tf.Tensor) -> tf.Tensor:
    """x is finite and at least the smallest normal number of its dtype."""
    return tf.logical_and(tf.math.is_finite(x), x >= _tiny(x.dtype))


def squares_trusted(sum_sq: tf.Tensor, n: tf.Tensor) -> tf.Tensor:
    """No overflow, and the flushed squares (each < 2*tiny) are a negligible share."""
    floor = n * (2.0 * _tiny(sum_sq.dtype) / _FLUSH_SHARE)
    return tf.logical_and(tf.math.is_finite(sum_sq), sum_sq >= floor)


# --- the built-in norms: (dense tensors) -> (value, trusted) -------------


def _l1(ts):
    v = _sum_abs(ts)
    return v, _normal(v)


def _l2(ts):
    s = _sum_sq(ts)
    return tf.sqrt(s), squares_trusted(s, _num_elements(ts, s.dtype))


def _l2_many(blocks):
    """l2 of many blocks at once.

    One L2Loss per tensor and one segment sum, not an add_n per block.
    """
    partial = tf.stack([tf.nn.l2_loss(t) for ts in blocks for t in ts]) * 2.0
    segments = tf.constant([b for b, ts in enumerate(blocks) for _ in ts])
    sum_sq = tf.math.unsorted_segment_sum(partial, segments, len(blocks))
    counts = tf.stack([_num_elements(ts, sum_sq.dtype) for ts in blocks])
    return tf.sqrt(sum_sq), squares_trusted(sum_sq, counts)


def _l1_l2(ts):
    a, s = _sum_abs(ts), _sum_sq(ts)
    ok = tf.logical_and(_normal(a), squares_trusted(s, _num_elements(ts, s.dtype)))
    return 0.5 * (a + tf.sqrt(s)), ok


def _avg_l1(ts):
    a = _sum_abs(ts)
    v = a / _num_elements(ts, a.dtype)
    return v, tf.logical_and(_normal(a), _normal(v))


def _avg_l2(ts):
    s = _sum_sq(ts)
    n = _num_elements(ts, s.dtype)
    return tf.sqrt(s / n), squares_trusted(s, n)


def _avg_l1_l2(ts):
    a, s = _sum_abs(ts), _sum_sq(ts)
    n = _num_elements(ts, s.dtype)
    ok = tf.logical_and(_normal(a / n), squares_trusted(s, n))
    return 0.5 * (a / n + tf.sqrt(s / n)), ok


def _max(ts):
    v = _max_abs(ts)
    return v, _normal(v)


def _min_max(ts):
    v = 0.5 * (_max_abs(ts) + _min_abs(ts))
    return v, _normal(v)


def _std(ts):
    """Population standard deviation of all elements.

    Two passes on data shifted by one of its own elements: a constant block
    becomes exactly zero, so its std is exactly 0 (and the block is left
    unchanged) instead of a rounding residue like 1e-17 that NG would turn
    into a 1e7 amplification, the keras seed's defect. A zero std is
    "untrusted" (it may be flushed squares), so the rescaled path confirms it.
    """
    n = _num_elements(ts, ts[0].dtype)
    shift = _combine([tf.reduce_max(t) for t in ts], tf.reduce_max)
    ds = [t - shift for t in ts]
    mean = tf.add_n([tf.reduce_sum(d) for d in ds]) / n
    s = tf.add_n([tf.reduce_sum(tf.square(d - mean)) for d in ds])
    return tf.sqrt(s / n), squares_trusted(s, n)


_BUILTIN = {
    "l1": _l1,
    "l2": _l2,
    "l1_l2": _l1_l2,
    "avg_l1": _avg_l1,
    "avg_l2": _avg_l2,
    "avg_l1_l2": _avg_l1_l2,
    "max": _max,
    "min_max": _min_max,
    "std": _std,
}


# --- exact power-of-two rescaling ---------------------------------------------


def power_of_two_below(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """``(p, 1/p)``: exact powers of two with ``x * p`` in [1, 4) for normal x > 0.

    Read from the float's exponent bits, so both are exact; ``p`` is clamped
    to [2**-(emax-1), 2**(emax-1)] so that ``1/p`` is a normal number too.
    """
    dtype = x.dtype
    if dtype == tf.float64:
        int_dtype, mantissa_bits, bias = tf.int64, 52, 1023
    elif dtype == tf.float32:
        int_dtype, mantissa_bits, bias = tf.int32, 23, 127
    else:
        raise TypeError(f"power_of_two_below expects float32 or float64, got {dtype.name}.")
    bits = tf.bitcast(x, int_dtype)
    exponent = tf.bitwise.right_shift(bits, tf.constant(mantissa_bits, int_dtype)) - bias
    exponent = tf.clip_by_value(exponent, -(bias - 1), bias - 1)

    def two_to(e):
        return tf.bitcast(
            tf.bitwise.left_shift(e + bias, tf.constant(mantissa_bits, int_dtype)), dtype
        )

    return two_to(-exponent), two_to(exponent)


class Rescaled(NamedTuple):
    """A block norm as ``r / p``: ``p`` an exact power of two, ``r`` the norm of ``p * block``.

    ``p = 1`` when the cheap value was trusted. ``r == 0`` means the norm is 0.
    """

    r: tf.Tensor
    p: tf.Tensor
    inv_p: tf.Tensor
    finite: tf.Tensor  # every element of the block is finite (max |g| propagates NaN)

    @property
    def value(self) -> tf.Tensor:
        """The norm itself; inf where it does not fit in the dtype."""
        return self.r * self.inv_p


class BlockNorm:
    """A named norm of a block (list of tensors), accurate over the float range.

    ``norm(block)`` returns the value (float32 for half-precision blocks).
    ``norm.cheap(ts)`` returns ``(value, trusted)`` on dense tensors and
    ``norm.rescaled(ts)`` the :class:`Rescaled` form, used by the transforms.
    """

    def __init__(
        self,
        name: str,
        fn: Callable,
        *,
        flat_fn: FlatNorm | None = None,
        many_fn: Callable | None = None,
    ):
        self.name = name
        self._fn = fn
        self._many_fn = many_fn
        self.flat_fn = flat_fn  # the user's function, for registered norms
        self.__name__ = name
        # Built-in norms use only TF ops XLA compiles and vectorize; a trusted
        # cheap value of one implies finite elements (sums, squares and max
        # propagate inf and NaN). A user norm may do neither.
        self.builtin = flat_fn is None
        self.trusted_means_finite = self.builtin

    def cheap(self, ts: Sequence[tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        """``(value, trusted)`` without rescaling, on :func:`dense_block` tensors."""
        return self._fn(ts)

    def cheap_many(self, blocks: Sequence[Sequence[tf.Tensor]]) -> tuple[tf.Tensor, tf.Tensor]:
        """``(values, trusted)`` vectors of :meth:`cheap` over many blocks (the vectorized
        transform); one kernel for all blocks where the norm has one (l2)."""
        blocks = [dense_block(b) for b in blocks]
        common = max((b[0].dtype for b in blocks), key=lambda d: d.size)
        blocks = [[tf.cast(t, common) for t in b] for b in blocks]  # no op when all agree
        if self._many_fn is not None:
            return self._many_fn(blocks)
        pairs = [self.cheap(ts) for ts in blocks]
        return tf.stack([p[0] for p in pairs]), tf.stack([p[1] for p in pairs])

    def rescaled(self, ts: Sequence[tf.Tensor]) -> Rescaled:
        """The norm as ``r / p`` after an exact power-of-two rescaling of the block."""
        dtype = ts[0].dtype
        largest = _max_abs(ts)
        p, inv_p = power_of_two_below(tf.where(largest > 0, largest, tf.ones([], dtype)))
        r, _ = self._fn([t * p for t in ts])
        # 0 for a zero block; NaN or inf (not 0) for a block holding one.
        r = tf.where(
            largest > 0,
            tf.cast(r, dtype),
            tf.where(tf.math.is_finite(largest), tf.zeros([], dtype), largest),
        )
        return Rescaled(r=r, p=p, inv_p=inv_p, finite=tf.math.is_finite(largest))

    def __call__(self, block: Sequence) -> tf.Tensor:
        ts = dense_block(block)
        value, trusted = self.cheap(ts)
        value = tf.cast(value, ts[0].dtype)
        return tf.cond(trusted, lambda: value, lambda: self.rescaled(ts).value)

    def __repr__(self) -> str:
        return f"BlockNorm({self.name!r})"


def _flat_norm(fn: FlatNorm) -> Callable:
    def cheap(ts):
        flat = tf.concat([tf.reshape(t, [-1]) for t in ts], axis=0)
        value = tf.cast(fn(flat), flat.dtype)
        return value, _normal(value)

    return cheap


_MANY = {"l2": _l2_many}
_REGISTRY: dict[str, BlockNorm] = {
    name: BlockNorm(name, fn, many_fn=_MANY.get(name)) for name, fn in _BUILTIN.items()
}


def register_norm(name: str, fn: FlatNorm, *, overwrite: bool = True) -> None:
    """Register a user norm under ``name``.

    ``fn`` maps one flat 1-D tensor (all elements of a block) to a scalar.
    Built-in names cannot be replaced, so a typo can't silently change ``l2``.

    Args:
        name: The name configs and :func:`get_norm` use (a non-empty string).
        fn: One flat 1-D tensor -> scalar tensor.
        overwrite: Whether a user norm already registered as ``name`` may be replaced.

    Raises:
        ValueError: ``name`` is empty or not a string, names a built-in norm, or is taken
            while ``overwrite`` is False.
        TypeError: ``fn`` is not callable.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"Norm name must be a non-empty string, got {name!r}.")
    if not callable(fn):
        raise TypeError(f"Norm {name!r} must be callable, got {type(fn).__name__}.")
    if name in _BUILTIN:
        raise ValueError(f"{name!r} is a built-in norm and cannot be replaced.")
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"Norm {name!r} is already registered.")
    _REGISTRY[name] = BlockNorm(name, _flat_norm(fn), flat_fn=fn)


def available_norms() -> tuple[str, ...]:
    """The names of every registered norm, sorted (built-ins and ``register_norm`` ones)."""
    return tuple(sorted(_REGISTRY))


def get_norm(name: str) -> BlockNorm:
    """Return the block norm registered as ``name``: a callable on a list of tensors.

    Args:
        name: A built-in norm name or one given to :func:`register_norm`.

    Returns:
        The :class:`BlockNorm`.

    Raises:
        ValueError: ``name`` is not registered; the message lists the registered names.
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown norm {name!r}. Registered norms: {', '.join(available_norms())}. "
            "Register a new one with tf_bng.register_norm(name, fn)."
        ) from None
