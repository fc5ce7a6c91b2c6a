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

A block whose norm is exactly zero passes through unchanged: it is never
amplified (the keras seed multiplied a constant tensor's gradient by 1e7
under ``std``). ``None`` gradients stay ``None`` and join no block.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence

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
    epsilon: float = 1e-7

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


def scale_gradient(grad, scale: tf.Tensor):
    """Multiply a dense or sparse (IndexedSlices) gradient by a scalar."""
    if isinstance(grad, tf.IndexedSlices):
        return tf.IndexedSlices(
            grad.values * tf.cast(scale, grad.values.dtype), grad.indices, grad.dense_shape
        )
    return grad * tf.cast(scale, grad.dtype)


def _stack_float32(norms: Sequence[tf.Tensor]) -> tf.Tensor:
    if not norms:
        return tf.zeros([0], tf.float32)
    return tf.stack([tf.cast(n, tf.float32) for n in norms])


def _read(variable) -> tf.Tensor:
    """Current value of a Keras variable (``.value`` property) or a tf.Variable."""
    # tf.Variable.value is a method, keras.Variable.value a property; both convert.
    return tf.convert_to_tensor(variable)


class BlockTransform:
    """A configured transform: ``(grads, variables) -> (grads, block_norms)``.

    The partition is computed on the first call for a given variable list and
    cached by variable identity (it is Python work done at trace time).
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

    def _scale(self, n: tf.Tensor, block_vars: Sequence[Any]) -> tf.Tensor:
        cfg = self.config
        one = tf.ones([], n.dtype)
        eps = tf.cast(cfg.epsilon, n.dtype)
        positive = n > 0
        if cfg.transform == "ng":
            return tf.where(positive, one / (n + eps), one)
        if cfg.transform == "ng_adap":
            m = tf.cast(self._norm([_read(v) for v in block_vars]), n.dtype)
            ok = tf.logical_and(positive, m > 0)
            return tf.where(ok, tf.cast(cfg.alpha, n.dtype) * m / (n + eps), one)
        if cfg.transform in ("clip", "global_clip"):
            thr = tf.cast(cfg.threshold, n.dtype)
            return tf.where(positive, tf.minimum(one, thr / (n + eps)), one)
        raise AssertionError(cfg.transform)

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
        # overlaps the rest of backprop. Vectorizing saves ~7 scalar ops per
        # block but joins all gradients first; on the 30-layer MLP it measured
        # ~5% slower at load ~1.7 on 2 cores, ~1.5% faster at load ~3.5.
        with tf.name_scope("block_transform"):
            for ix in part.blocks:
                n = self._norm([grads[i] for i in ix])
                scale = self._scale(n, [variables[i] for i in ix])
                for i in ix:
                    out[i] = scale_gradient(grads[i], scale)
                norms.append(n)
            if not with_norms:
                return out, None
            return out, _stack_float32(norms)


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
    epsilon: float = 1e-7,
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
