"""Norms of a gradient block.

A *block* is a list of tensors (for example a layer's kernel and bias); its norm
is taken over all of their elements together, as if they were one flat vector.
The built-in norms reduce each tensor separately and combine the partial
results, so no concatenated copy of the block is ever made.

User norms are registered with :func:`register_norm` and receive the block as
one flat 1-D tensor (the concatenation), which keeps their signature simple.
"""

from __future__ import annotations

from typing import Callable, Dict, Sequence

import tensorflow as tf

BlockNorm = Callable[[Sequence[tf.Tensor]], tf.Tensor]
FlatNorm = Callable[[tf.Tensor], tf.Tensor]

__all__ = [
    "BlockNorm",
    "FlatNorm",
    "register_norm",
    "get_norm",
    "available_norms",
    "compute_dtype",
]


def compute_dtype(dtype: tf.DType) -> tf.DType:
    """float16/bfloat16 blocks are reduced in float32; wider floats as they are."""
    dtype = tf.as_dtype(dtype)
    return tf.float32 if dtype in (tf.float16, tf.bfloat16) else dtype


def _dense(tensors: Sequence[tf.Tensor]) -> list[tf.Tensor]:
    """Dense tensors in one common dtype, the widest compute dtype of the block.

    A block may mix dtypes (a float64 layer next to float32 ones under
    ``global``); the partial sums must agree on one dtype to be added.
    """
    # Converting IndexedSlices sums duplicate indices, as a norm requires.
    ts = [tf.convert_to_tensor(t) for t in tensors]
    common = max((compute_dtype(t.dtype) for t in ts), key=lambda d: d.size)
    return [tf.cast(t, common) for t in ts]


def _count(tensors: Sequence[tf.Tensor], dtype: tf.DType) -> tf.Tensor:
    """Number of elements; a constant when the shapes are static (no Size ops in the step)."""
    static = [t.shape.num_elements() for t in tensors]
    if all(n is not None for n in static):
        return tf.constant(float(sum(static)), dtype)
    return tf.add_n([tf.cast(tf.size(t), dtype) for t in tensors])


# The helpers below run inside every train step, once per block: each TF op
# costs ~0.5-2 us of executor time on a 2-core CPU, so they avoid ops that do
# no arithmetic (a one-element Pack) and prefer one fused kernel per tensor.


def _combine(partials: list, reduce_fn) -> tf.Tensor:
    """Combine per-tensor scalars; a single one is returned as is."""
    return partials[0] if len(partials) == 1 else reduce_fn(tf.stack(partials))


def _sum_abs(ts):
    return tf.add_n([tf.reduce_sum(tf.abs(t)) for t in ts])


def _sum_sq(ts):
    # L2Loss is one fused pass computing sum(t**2) / 2; Square + Sum would
    # write t**2 to memory and read it back. The halving is exact.
    return 2.0 * tf.add_n([tf.nn.l2_loss(t) for t in ts])


def _max_abs(ts):
    return _combine([tf.reduce_max(tf.abs(t)) for t in ts], tf.reduce_max)


def _min_abs(ts):
    return _combine([tf.reduce_min(tf.abs(t)) for t in ts], tf.reduce_min)


def l1(block):
    return _sum_abs(_dense(block))


def l2(block):
    return tf.sqrt(_sum_sq(_dense(block)))


def l1_l2(block):
    ts = _dense(block)
    return 0.5 * (_sum_abs(ts) + tf.sqrt(_sum_sq(ts)))


def avg_l1(block):
    ts = _dense(block)
    return _sum_abs(ts) / _count(ts, ts[0].dtype)


def avg_l2(block):
    ts = _dense(block)
    return tf.sqrt(_sum_sq(ts) / _count(ts, ts[0].dtype))


def avg_l1_l2(block):
    ts = _dense(block)
    n = _count(ts, ts[0].dtype)
    return 0.5 * (_sum_abs(ts) / n + tf.sqrt(_sum_sq(ts) / n))


def max_norm(block):
    return _max_abs(_dense(block))


def min_max(block):
    ts = _dense(block)
    return 0.5 * (_max_abs(ts) + _min_abs(ts))


def std(block):
    """Population standard deviation of all elements.

    Two passes on data shifted by one of its own elements: a constant block
    becomes exactly zero, so its std is exactly 0 (and the block is left
    unchanged) instead of a rounding residue like 1e-17 that NG would turn
    into a 1e7 amplification, the keras seed's defect.
    """
    ts = _dense(block)
    n = _count(ts, ts[0].dtype)
    shift = _combine([tf.reduce_max(t) for t in ts], tf.reduce_max)
    ds = [t - shift for t in ts]
    mean = tf.add_n([tf.reduce_sum(d) for d in ds]) / n
    var = tf.add_n([tf.reduce_sum(tf.square(d - mean)) for d in ds]) / n
    return tf.sqrt(var)


_BUILTIN: Dict[str, BlockNorm] = {
    "l1": l1,
    "l2": l2,
    "l1_l2": l1_l2,
    "avg_l1": avg_l1,
    "avg_l2": avg_l2,
    "avg_l1_l2": avg_l1_l2,
    "max": max_norm,
    "min_max": min_max,
    "std": std,
}
_REGISTRY: Dict[str, BlockNorm] = dict(_BUILTIN)


def _flat_to_block(fn: FlatNorm) -> BlockNorm:
    def block_norm(block: Sequence[tf.Tensor]) -> tf.Tensor:
        ts = _dense(block)
        flat = tf.concat([tf.reshape(t, [-1]) for t in ts], axis=0)
        return tf.cast(fn(flat), flat.dtype)

    block_norm.__name__ = getattr(fn, "__name__", "custom_norm")
    block_norm.flat_fn = fn  # type: ignore[attr-defined]
    return block_norm


def register_norm(name: str, fn: FlatNorm, *, overwrite: bool = True) -> None:
    """Register a user norm under ``name``.

    ``fn`` maps one flat 1-D tensor (all elements of a block) to a scalar.
    Built-in names cannot be replaced, so a typo can't silently change ``l2``.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"Norm name must be a non-empty string, got {name!r}.")
    if not callable(fn):
        raise TypeError(f"Norm {name!r} must be callable, got {type(fn).__name__}.")
    if name in _BUILTIN:
        raise ValueError(f"{name!r} is a built-in norm and cannot be replaced.")
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"Norm {name!r} is already registered.")
    _REGISTRY[name] = _flat_to_block(fn)


def available_norms() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


def get_norm(name: str) -> BlockNorm:
    """Return the block norm registered as ``name``: a callable on a list of tensors."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown norm {name!r}. Registered norms: {', '.join(available_norms())}. "
            "Register a new one with tf_bng.register_norm(name, fn)."
        ) from None


def registered_flat_norms() -> Dict[str, FlatNorm]:
    """User-registered norms, by name (used by the optimizer wrappers' API)."""
    return {k: v.flat_fn for k, v in _REGISTRY.items() if hasattr(v, "flat_fn")}
