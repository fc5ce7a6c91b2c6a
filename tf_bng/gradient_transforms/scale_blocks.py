"""The driver: multiply each block by the factor its :class:`BlockScale` gives.

One implementation serves every scaling transform (normalize, trust ratio,
block clip, global clip, norms only). Each block takes one of two paths,
chosen by a ``tf.cond``: the cheap one (the norm as computed, one multiply per
tensor) when the norm is trusted and the factor far inside the dtype's range,
else the exact one, which rescales the block by a power of two first (see
:mod:`tf_bng.norms`) and so stays right for gradients anywhere between 1e-38
and 3e38. A zero norm (or, for a trust ratio, a zero weight norm) leaves the
block unchanged. Rules with many blocks are transformed all at once (one
cond, vector scalar work) instead of block by block.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from tf_bng import blocks as blocks_lib
from tf_bng import norms as norms_lib
from tf_bng.gradient_transforms import numerics
from tf_bng.gradient_transforms.protocol import GradientTransform, TransformResult, present_mask
from tf_bng.gradient_transforms.scales import BlockScale

__all__ = ["ScaleBlocks"]


class ScaleBlocks(GradientTransform):
    """Group the present gradients into blocks and multiply each by its rule's factor.

    Args:
        rule: The :class:`~tf_bng.gradient_transforms.scales.BlockScale` giving each factor.
        norm: A registered norm name (see :func:`tf_bng.available_norms`).
        blocks: ``"layer"``, ``"variable"``, ``"global"`` or a callable variable -> key.

    Raises:
        ValueError: an unknown norm or block mode (the message lists the valid ones).
    """

    # From this many blocks on, transform them all at once (see BUILD_NOTES for the
    # measured crossover). Class attributes, so a benchmark or test can compare both paths.
    vectorize = True
    vectorize_min_blocks = 16

    def __init__(
        self, rule: BlockScale, *, norm: str = "l2", blocks: blocks_lib.BlockSpec = "layer"
    ):
        if not callable(blocks) and blocks not in blocks_lib.BLOCK_MODES:
            raise ValueError(
                f"Unknown blocks {blocks!r}. Valid choices: "
                f"{', '.join(map(repr, blocks_lib.BLOCK_MODES))}, or a callable variable -> key."
            )
        self.rule = rule
        self.norm = norms_lib.get_norm(norm)
        self.blocks = blocks
        # (variable ids, present) -> (partition, variables): keeps the variables alive so
        # their ids cannot be reused by another model's.
        self._cache: dict[tuple, tuple[blocks_lib.Partition, tuple]] = {}

    @property
    def xla_compatible(self) -> bool:
        return self.norm.builtin

    def layout(self, variables: Sequence[Any], present: Sequence[bool]) -> blocks_lib.Partition:
        key = (tuple(id(v) for v in variables), tuple(present))
        entry = self._cache.get(key)
        if entry is None:
            skip = [i for i, p in enumerate(present) if not p]
            part = blocks_lib.partition_variables(variables, self.blocks, skip=skip)
            entry = self._cache[key] = (part, tuple(variables))
        return entry[0]

    def apply(self, grads: Sequence[Any], variables: Sequence[Any]) -> TransformResult:
        grads, variables = list(grads), list(variables)
        blocks = self.layout(variables, present_mask(grads)).blocks
        out = list(grads)
        with tf.name_scope("scale_blocks"):
            if self._vectorizes(blocks, grads):
                new, norms, scales, finite = self._all_blocks(blocks, grads, variables)
            else:
                # Block by block: a block's scaling waits only for its own gradients and
                # overlaps the rest of backprop.
                each = [
                    self._one_block([grads[i] for i in ix], [variables[i] for i in ix])
                    for ix in blocks
                ]
                new = [e[0] for e in each]
                norms = numerics.stack_float32([e[1] for e in each])
                scales = numerics.stack_float32([e[2] for e in each])
                finite = _all_true([e[3] for e in each])
            for ix, block_new in zip(blocks, new):
                for i, g in zip(ix, block_new):
                    out[i] = g
            return TransformResult(
                out, tf.cast(norms, tf.float32), tf.cast(scales, tf.float32), finite
            )

    # -- the factor, on either path ------------------------------------------------------
    def _capped(self, scale: tf.Tensor, cap_unit: tf.Tensor | float = 1.0) -> tf.Tensor:
        """``min(scale, max_scale * cap_unit)``; ``cap_unit = 1/p`` on the exact path."""
        if self.rule.max_scale is None:
            return scale
        return tf.minimum(scale, tf.cast(self.rule.max_scale, scale.dtype) * cap_unit)

    def _cheap_scale(self, n: tf.Tensor, m: tf.Tensor | None) -> tf.Tensor:
        """The factor from a trusted norm ``n > 0`` (and weight norm ``m > 0``)."""
        return self._capped(self.rule.scale(n + tf.cast(self.rule.epsilon, n.dtype), m))

    def _exact_block(self, grads: list, ts: list, variables: list):
        """The block via the rescaled norm ``n = r / p``: ``(grads, n, scale, finite)``."""
        dtype = ts[0].dtype
        one = tf.ones([], dtype)
        rescaled = self.norm.rescaled(ts)
        r, p = rescaled.r, rescaled.p
        m = None
        if self.rule.uses_weights:
            m = tf.cast(self.norm(numerics.dense_weights(variables)), dtype)
        changes, c = self.rule.rescaled(r + tf.cast(self.rule.epsilon, dtype) * p, p, m)
        changed = r > 0 if changes is None else tf.logical_and(r > 0, changes)
        c = self._capped(c, rescaled.inv_p)
        first = tf.where(changed, p, one)
        second = tf.where(changed, c, one)
        new = [numerics.scale_in(g, dtype, first, second) for g in grads]
        return new, rescaled.value, first * second, rescaled.finite

    # -- one block ---------------------------------------------------------------------------
    def _one_block(self, grads: list, variables: list):
        """New gradients of one block, its norm, its factor and whether it was finite."""
        ts = norms_lib.dense_block(grads)
        dtype = ts[0].dtype
        if not self.rule.changes_gradients:
            return list(grads), self.norm(ts), tf.ones([], dtype), numerics.all_finite(ts)
        n, trusted = self.norm.cheap(ts)
        n = tf.cast(n, dtype)
        m = None
        if self.rule.uses_weights:
            m, m_trusted = self.norm.cheap(numerics.dense_weights(variables))
            m = tf.cast(m, dtype)
            trusted = tf.logical_and(trusted, m_trusted)
        # Evaluated even when n is untrusted (then the cond discards it): it may be inf.
        scale = self._cheap_scale(n, m)
        fast = tf.logical_and(trusted, _in_safe_range(scale))
        fast_finite = (
            tf.constant(True) if self.norm.trusted_means_finite else numerics.all_finite(ts)
        )
        return tf.cond(
            fast,
            lambda: ([numerics.scale_gradient(g, scale) for g in grads], n, scale, fast_finite),
            lambda: numerics.call_out_of_line(
                lambda g, t: self._exact_block(g, t, variables), grads, ts
            ),
        )

    # -- many blocks at once -----------------------------------------------------------------
    def _vectorizes(self, blocks: Sequence[tuple[int, ...]], grads: list) -> bool:
        """Enough blocks to pay, a built-in norm, dense gradients of one float32/64 dtype."""
        if not self.vectorize or len(blocks) < self.vectorize_min_blocks:
            return False
        if not (self.rule.changes_gradients and self.norm.builtin):
            return False
        members = [grads[i] for ix in blocks for i in ix]
        if any(isinstance(g, tf.IndexedSlices) for g in members):
            return False
        dtypes = {tf.as_dtype(g.dtype) for g in members}
        return len(dtypes) == 1 and dtypes.pop() in (tf.float32, tf.float64)

    def _all_blocks(self, blocks: Sequence[tuple[int, ...]], grads: list, variables: list):
        """Every block with one factor computation and one ``cond``.

        Per block this costs a norm kernel and a multiply per tensor; the scalar
        work (trust, factor, range) is done once on vectors. The exact path, for
        the rare step where some block needs it, runs out of line.
        """
        block_grads = [[grads[i] for i in ix] for ix in blocks]
        block_vars = [[variables[i] for i in ix] for ix in blocks]
        n, trusted = self.norm.cheap_many(block_grads)
        m = None
        if self.rule.uses_weights:
            weights = [numerics.dense_weights(vs) for vs in block_vars]
            m, m_trusted = self.norm.cheap_many(weights)
            trusted = tf.logical_and(trusted, m_trusted)
        scale = self._cheap_scale(n, m)
        block_fast = tf.logical_and(trusted, _in_safe_range(scale))

        def cheap():
            each = tf.unstack(scale)
            new = [[g * each[k] for g in gs] for k, gs in enumerate(block_grads)]
            return new, n, scale, tf.constant(True)

        def exact(flat, cheap_norms, cheap_scales, cheap_ok):
            return self._exact_where_needed(
                flat, blocks, block_vars, cheap_norms, cheap_scales, cheap_ok
            )

        flat = [g for gs in block_grads for g in gs]
        return tf.cond(
            tf.reduce_all(block_fast),
            cheap,
            lambda: numerics.call_out_of_line(exact, flat, n, scale, block_fast),
        )

    def _exact_where_needed(self, flat, blocks, block_vars, cheap_norms, cheap_scales, cheap_ok):
        """Block by block: the exact path only where that block's cheap one fails."""
        new, ns, ss, oks = [], [], [], []
        start = 0
        for k, ix in enumerate(blocks):
            gs = flat[start : start + len(ix)]
            start += len(ix)

            def exact_k(gs=gs, k=k):
                return self._exact_block(gs, norms_lib.dense_block(gs), block_vars[k])

            def cheap_k(gs=gs, k=k):
                s = cheap_scales[k]
                return [g * s for g in gs], cheap_norms[k], s, tf.constant(True)

            g_new, nk, sk, ok = tf.cond(cheap_ok[k], cheap_k, exact_k)
            new.append(g_new)
            ns.append(nk)
            ss.append(sk)
            oks.append(ok)
        return new, tf.stack(ns), tf.stack(ss), tf.reduce_all(tf.stack(oks))


def _in_safe_range(scale: tf.Tensor) -> tf.Tensor:
    low, high = numerics.safe_scale_range(scale.dtype)
    return tf.logical_and(scale >= low, scale <= high)


def _all_true(flags: Sequence[tf.Tensor]) -> tf.Tensor:
    if not flags:
        return tf.constant(True)
    return flags[0] if len(flags) == 1 else tf.reduce_all(tf.stack(flags))
