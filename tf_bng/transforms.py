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
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf

from tf_bng import blocks as blocks_lib
from tf_bng import norms as norms_lib
from tf_bng import selectors as selectors_lib
from tf_bng.block_plan import BlockPlan, plan_blocks

__all__ = [
    "TRANSFORMS",
    "TransformConfig",
    "BlockTransform",
    "TransformResult",
    "GROUP_OVERRIDES",
    "transform_gradients",
    "scale_gradient",
]

TRANSFORMS = ("none", "ng", "ng_adap", "clip", "global_clip")


def _check_choice(kind: str, value: Any, valid: Sequence[str]) -> None:
    if value not in valid:
        raise ValueError(f"Unknown {kind} {value!r}. Valid choices: {', '.join(map(repr, valid))}.")


# What a parameter group may set differently from the top level.
GROUP_OVERRIDES = ("transform", "norm", "blocks", "alpha", "threshold", "epsilon", "max_scale")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TransformConfig:
    """Settings of a block transform; validated on construction.

    ``max_scale`` caps the factor any block is multiplied by (LARS's
    trust-ratio clipping for ``ng_adap``; None: no cap). ``groups`` is a
    sequence of ``(selector, overrides)``: a variable takes the settings of
    the first group whose selector matches it (see :mod:`tf_bng.selectors`),
    with ``overrides`` (keys of :data:`GROUP_OVERRIDES`) replacing the
    top-level values; the others take the top-level settings. A group whose
    transform is ``none`` works like ``exclude``.
    """

    transform: str = "none"
    norm: str = "l2"
    blocks: blocks_lib.BlockSpec = "layer"
    alpha: float = 0.02
    threshold: float = 1.0
    exclude: tuple[str, ...] = ()
    epsilon: float = 0.0
    max_scale: float | None = None
    groups: tuple = ()

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
        if self.max_scale is not None and not self.max_scale > 0:
            raise ValueError(f"max_scale must be > 0 or None, got {self.max_scale!r}.")
        object.__setattr__(self, "groups", tuple(self._checked_group(g) for g in self.groups))

    def _checked_group(self, group: Any) -> tuple:
        try:
            selector, overrides = group
        except (TypeError, ValueError):
            raise ValueError(f"A group is a pair (selector, overrides); got {group!r}.") from None
        selector = selectors_lib.as_selector(selector)
        overrides = dict(overrides)
        unknown = sorted(set(overrides) - set(GROUP_OVERRIDES))
        if unknown:
            raise ValueError(
                f"Group overrides {unknown} are not settings a group may change; valid: "
                f"{', '.join(GROUP_OVERRIDES)}."
            )
        self.group_config(overrides)  # validates the values
        return (selector, overrides)

    def group_config(self, overrides: dict) -> TransformConfig:
        """The settings of a group: the top level with ``overrides``, without groups or exclude."""
        return dataclasses.replace(self, groups=(), exclude=(), **overrides)

    @property
    def effective_blocks(self) -> blocks_lib.BlockSpec:
        """The block mode that applies: ``"global"`` for ``global_clip``, else ``blocks``."""
        return "global" if self.transform == "global_clip" else self.blocks

    def rules(self) -> tuple[TransformConfig, ...]:
        """Rule 0 (the top level) and one per group, each without groups."""
        top = dataclasses.replace(self, groups=(), exclude=())
        return (top,) + tuple(self.group_config(o) for _, o in self.groups)


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
    low = tiny**0.75
    return low, 1.0 / low


class TransformResult(NamedTuple):
    """New gradients, and per block (float32, in ``BlockTransform.block_names`` order) the
    gradient norm before the transform and the factor the block was multiplied by.

    ``finite``: every input gradient was finite, decided from what the norms
    computed anyway (no extra pass over the blocks). It says nothing of the
    weights: ``ng_adap`` without ``max_scale`` on an infinite weight norm can
    still produce an infinite update (the optimizer's state then shows it).
    """

    grads: list
    norms: tf.Tensor
    scales: tf.Tensor
    finite: tf.Tensor


class _Rule:
    """One set of settings (top level or a group) with its norm function."""

    def __init__(self, config: TransformConfig):
        self.config = config
        self.norm = norms_lib.get_norm(config.norm)


class BlockTransform:
    """A configured transform: ``(grads, variables) -> (grads, block_norms)``.

    The block plan (groups, exclude, block mode) is computed on the first
    call for a given variable list and cached by variable identity (it is
    Python work done at trace time). :meth:`apply` also returns each
    block's scale.

    Each block takes one of two paths, chosen by a ``tf.cond``: the cheap one
    (the norm as computed, one multiply per tensor) when the norm is trusted
    and the scale is far inside the dtype's range, else the exact one, which
    rescales the block by a power of two first (see :mod:`tf_bng.norms`) and
    so stays right for gradients anywhere between 1e-38 and 3e38.
    """

    # Rules with at least this many blocks are transformed all at once (one cond,
    # vector scalar work) instead of block by block; see BUILD_NOTES for the
    # measured crossover. Attributes, so a benchmark can compare both.
    vectorize = True
    vectorize_min_blocks = 16

    def __init__(self, config: TransformConfig | None = None, **kwargs):
        if config is None:
            config = TransformConfig(**kwargs)
        elif kwargs:
            raise TypeError("Pass either a TransformConfig or keyword settings, not both.")
        self.config = config
        self._rules = tuple(_Rule(c) for c in config.rules())
        self._norm = self._rules[0].norm
        # id(variable) -> plan; each entry keeps its variables alive so
        # that their ids cannot be reused by the variables of another model.
        self._cache: dict[tuple, tuple[BlockPlan, tuple]] = {}

    @property
    def builtin_norms_only(self) -> bool:
        """Every rule uses a built-in norm: the transform may be XLA-compiled and vectorized."""
        return all(rule.norm.builtin for rule in self._rules)

    def plan(self, variables: Sequence[Any], grads: Sequence[Any] | None = None) -> BlockPlan:
        """The block plan for ``variables`` (cached per variable list and set of missing gradients).

        Args:
            variables: The variables the gradients belong to.
            grads: The gradients; those that are ``None`` are left out of every block.

        Returns:
            The :class:`BlockPlan` (which variables form each block, and each block's rule).
        """
        skip = () if grads is None else tuple(i for i, g in enumerate(grads) if g is None)
        key = (tuple(id(v) for v in variables), skip)
        entry = self._cache.get(key)
        if entry is None:
            rules = [r.config for r in self._rules]
            plan = plan_blocks(
                variables,
                blocks=[r.effective_blocks for r in rules],
                excluded_rules=[i > 0 and r.transform == "none" for i, r in enumerate(rules)],
                selectors=[selector for selector, _ in self.config.groups],
                exclude=self.config.exclude,
                skip=skip,
            )
            entry = self._cache[key] = (plan, tuple(variables))
        return entry[0]

    def partition(self, variables: Sequence[Any], grads: Sequence[Any] | None = None):
        """The blocks as a :class:`~tf_bng.blocks.Partition` (names, index tuples, excluded)."""
        return self.plan(variables, grads).partition

    def block_norms(self, grads: Sequence[Any], variables: Sequence[Any]) -> tf.Tensor:
        """The norm of every block's gradient, as a 1-D float32 tensor."""
        plan = self.plan(variables, grads)
        with tf.name_scope("block_norms"):
            return _stack_float32(
                [
                    self._rules[r].norm([grads[i] for i in ix])
                    for ix, r in zip(plan.blocks, plan.rules)
                ]
            )

    # -- one block ---------------------------------------------------------------
    @staticmethod
    def _cheap_scale(cfg: TransformConfig, n: tf.Tensor, m: tf.Tensor | None) -> tf.Tensor:
        """The scale from a trusted norm ``n > 0`` (and weight norm ``m > 0``)."""
        eps = tf.cast(cfg.epsilon, n.dtype)
        if cfg.transform == "ng":
            scale = 1.0 / (n + eps)
        elif cfg.transform == "ng_adap":
            scale = tf.cast(cfg.alpha, n.dtype) * m / (n + eps)
        elif cfg.transform in ("clip", "global_clip"):
            scale = tf.minimum(tf.ones([], n.dtype), tf.cast(cfg.threshold, n.dtype) / (n + eps))
        else:
            raise AssertionError(cfg.transform)
        if cfg.max_scale is not None:
            scale = tf.minimum(scale, tf.cast(cfg.max_scale, n.dtype))
        return scale

    @staticmethod
    def _exact_block(rule: _Rule, grads: list, ts: list, variables: list):
        """The block's new gradients via the rescaled norm ``n = r / p``; returns (grads, n, scale).

        ``g * scale`` is computed as ``(g * p) * c`` with ``c = scale / p``,
        both factors representable. A zero norm (or, for ng_adap, a zero
        weight norm) leaves the block unchanged.
        """
        cfg = rule.config
        dtype = ts[0].dtype
        one = tf.ones([], dtype)
        rescaled = rule.norm.rescaled(ts)
        r, p = rescaled.r, rescaled.p
        # eps * ||g|| units -> units of the rescaled block.
        denominator = r + tf.cast(cfg.epsilon, dtype) * p
        changed = r > 0
        if cfg.transform == "ng":
            c = one / denominator
        elif cfg.transform == "ng_adap":
            m = tf.cast(rule.norm(dense_weights(variables)), dtype)
            changed = tf.logical_and(changed, m > 0)
            c = tf.cast(cfg.alpha, dtype) * m / denominator
        else:  # clip: scale < 1 iff threshold < n + eps, i.e. threshold * p < r + eps * p
            threshold = tf.cast(cfg.threshold, dtype)
            changed = tf.logical_and(changed, threshold * p < denominator)
            c = threshold / denominator
        if cfg.max_scale is not None:  # scale <= max_scale  <=>  c <= max_scale / p
            c = tf.minimum(c, tf.cast(cfg.max_scale, dtype) * rescaled.inv_p)
        first = tf.where(changed, p, one)
        second = tf.where(changed, c, one)
        new = [_scale_in(g, dtype, first, second) for g in grads]
        return new, rescaled.value, first * second, rescaled.finite

    def _transform_block(self, rule: _Rule, grads: list, variables: list):
        """New gradients of one block, its norm and its scale: the cheap path when it is exact."""
        cfg = rule.config
        ts = norms_lib.dense_block(grads)
        dtype = ts[0].dtype
        n, trusted = rule.norm.cheap(ts)
        n = tf.cast(n, dtype)
        if cfg.transform == "none":
            return list(grads), rule.norm(ts), tf.ones([], dtype), all_finite(ts)
        m = None
        if cfg.transform == "ng_adap":
            m, m_trusted = rule.norm.cheap(dense_weights(variables))
            m = tf.cast(m, dtype)
            trusted = tf.logical_and(trusted, m_trusted)
        # Evaluated even when n is untrusted (then the cond discards it): it may be inf.
        scale = self._cheap_scale(cfg, n, m)
        low, high = _safe_scale_range(dtype)
        fast = tf.logical_and(trusted, tf.logical_and(scale >= low, scale <= high))
        fast_finite = tf.constant(True) if rule.norm.trusted_means_finite else all_finite(ts)
        return tf.cond(
            fast,
            lambda: ([scale_gradient(g, scale) for g in grads], n, scale, fast_finite),
            lambda: _call_out_of_line(
                lambda g, t: self._exact_block(rule, g, t, variables), grads, ts
            ),
        )

    def apply(self, grads: Sequence[Any], variables: Sequence[Any]) -> TransformResult:
        """The transformed gradients with every block's norm and scale."""
        grads = list(grads)
        variables = list(variables)
        check_gradients(grads, variables)
        plan = self.plan(variables, grads)
        out = list(grads)
        norms: list = [None] * len(plan.blocks)
        scales: list = [None] * len(plan.blocks)
        finite = []
        with tf.name_scope("block_transform"):
            by_rule: dict[int, list[int]] = {}
            for b, r in enumerate(plan.rules):
                by_rule.setdefault(r, []).append(b)
            for r, block_ids in by_rule.items():
                rule = self._rules[r]
                vectorized = self.vectorize and self._can_vectorize(rule, plan, block_ids, grads)
                if vectorized:
                    new_grads, n, scale, ok = self._transform_vectorized(
                        rule, [plan.blocks[b] for b in block_ids], grads, variables
                    )
                    for ix, new in zip((plan.blocks[b] for b in block_ids), new_grads):
                        for i, g in zip(ix, new):
                            out[i] = g
                    for k, b in enumerate(block_ids):
                        norms[b], scales[b] = n[k], scale[k]
                    finite.append(ok)
                    continue
                # Block by block: a block's scaling waits only for its own
                # gradients and overlaps the rest of backprop.
                for b in block_ids:
                    ix = plan.blocks[b]
                    new, n, scale, ok = self._transform_block(
                        rule, [grads[i] for i in ix], [variables[i] for i in ix]
                    )
                    for i, g in zip(ix, new):
                        out[i] = g
                    norms[b], scales[b] = n, scale
                    finite.append(ok)
            in_blocks = {i for ix in plan.blocks for i in ix}
            finite.append(all_finite([g for i, g in enumerate(grads) if i not in in_blocks]))
            return TransformResult(
                out,
                _stack_float32(norms),
                _stack_float32(scales),
                tf.reduce_all(tf.stack(finite)),
            )

    # -- many blocks at once ----------------------------------------------------------
    def _can_vectorize(self, rule: _Rule, plan: BlockPlan, block_ids: list, grads: list) -> bool:
        """Built-in norm, a scaling transform, dense gradients of one float32/float64 dtype,
        and enough blocks to pay."""
        if len(block_ids) < self.vectorize_min_blocks or rule.config.transform == "none":
            return False
        if not rule.norm.builtin:
            return False
        dtypes = set()
        for b in block_ids:
            for i in plan.blocks[b]:
                g = grads[i]
                if isinstance(g, tf.IndexedSlices):
                    return False
                dtypes.add(tf.as_dtype(g.dtype))
        return len(dtypes) == 1 and dtypes.pop() in (tf.float32, tf.float64)

    def _transform_vectorized(self, rule: _Rule, blocks: list, grads: list, variables: list):
        """Every block of one rule with one scale computation and one ``cond``.

        Per block this costs a norm kernel per tensor and a multiply per tensor;
        the scalar work (trust, scale, range) is done once on vectors. The exact
        path, for the rare step where some block needs it, runs out of line.
        """
        cfg = rule.config
        block_grads = [[grads[i] for i in ix] for ix in blocks]
        block_vars = [[variables[i] for i in ix] for ix in blocks]
        n, trusted = rule.norm.cheap_many(block_grads)
        m = None
        if cfg.transform == "ng_adap":
            m, m_trusted = rule.norm.cheap_many([dense_weights(vs) for vs in block_vars])
            trusted = tf.logical_and(trusted, m_trusted)
        scale = self._cheap_scale(cfg, n, m)
        low, high = _safe_scale_range(n.dtype)
        block_fast = tf.logical_and(trusted, tf.logical_and(scale >= low, scale <= high))
        fast = tf.reduce_all(block_fast)

        def scaled(gs, s):
            return [g * s for g in gs]

        def cheap():
            each = tf.unstack(scale)
            new = [scaled(gs, each[k]) for k, gs in enumerate(block_grads)]
            return new, n, scale, tf.constant(True)

        def exact(gs_flat, cheap_norms, cheap_scales, cheap_ok):
            """Block by block: the exact path only where that block's cheap one fails."""
            new, ns, ss, oks = [], [], [], []
            start = 0
            for k, ix in enumerate(blocks):
                gs = gs_flat[start : start + len(ix)]
                start += len(ix)

                def exact_k(gs=gs, k=k):
                    return self._exact_block(rule, gs, norms_lib.dense_block(gs), block_vars[k])

                def cheap_k(gs=gs, k=k):
                    s = cheap_scales[k]
                    return scaled(gs, s), cheap_norms[k], s, tf.constant(True)

                g_new, nk, sk, ok = tf.cond(cheap_ok[k], cheap_k, exact_k)
                new.append(g_new)
                ns.append(nk)
                ss.append(sk)
                oks.append(ok)
            return new, tf.stack(ns), tf.stack(ss), tf.reduce_all(tf.stack(oks))

        flat = [g for gs in block_grads for g in gs]
        return tf.cond(fast, cheap, lambda: _call_out_of_line(exact, flat, n, scale, block_fast))

    def __call__(
        self, grads: Sequence[Any], variables: Sequence[Any], *, with_norms: bool = True
    ) -> tuple[list, tf.Tensor | None]:
        grads = list(grads)
        variables = list(variables)
        if self.config.transform == "none" and not self.config.groups:
            check_gradients(grads, variables)  # else apply checks them
            return grads, (self.block_norms(grads, variables) if with_norms else None)
        result = self.apply(grads, variables)
        return result.grads, (result.norms if with_norms else None)


def _is_pair(item: Any) -> bool:
    """A ``(gradient, variable)`` pair as ``apply_gradients`` takes them."""
    return isinstance(item, (tuple, list)) and len(item) == 2 and hasattr(item[1], "assign")


def check_gradients(grads: Sequence[Any], variables: Sequence[Any]) -> None:
    """Raise a clear error when ``grads`` cannot be the gradients of ``variables``.

    One gradient (or None) per variable, in the same order: a floating-point
    tensor (or ``IndexedSlices``) of the variable's shape. ``TypeError`` for
    (gradient, variable) pairs or a non-float gradient, ``ValueError`` for a
    count or shape mismatch; both name the variable. Python work at trace
    time only.
    """
    if grads and all(_is_pair(g) for g in grads):
        raise TypeError(
            "grads holds (gradient, variable) pairs (the list(zip(grads, variables)) of "
            "apply_gradients); pass the gradients and the variables as two lists: "
            "transform_gradients(grads, variables, ...)."
        )
    if len(grads) != len(variables):
        raise ValueError(
            f"Got {len(grads)} gradients for {len(variables)} variables; pass one gradient "
            "(or None) per variable, in the same order."
        )
    for i, (g, v) in enumerate(zip(grads, variables)):
        if g is None:
            continue
        name = blocks_lib.variable_path(v) if hasattr(v, "name") or hasattr(v, "path") else v
        values = g.values if isinstance(g, tf.IndexedSlices) else g
        dtype = getattr(values, "dtype", None)
        if dtype is None:
            raise TypeError(
                f"The gradient of variable {name!r} (position {i}) is a {type(g).__name__}, "
                "not a tensor; pass one tensor (or None) per variable."
            )
        dtype = tf.as_dtype(dtype)
        if not dtype.is_floating:
            raise TypeError(
                f"The gradient of variable {name!r} (position {i}) has dtype {dtype.name}; "
                "block transforms need floating-point gradients (cast it, or exclude the "
                "variable)."
            )
        g_shape = tf.TensorShape(getattr(g, "shape", None))
        v_shape = tf.TensorShape(getattr(v, "shape", None))
        if not g_shape.is_compatible_with(v_shape):
            raise ValueError(
                f"The gradient at position {i} has shape {g_shape} but variable {name!r} has "
                f"shape {v_shape}: are the gradients in the order of the variables?"
            )


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


def all_finite(tensors: Sequence[Any]) -> tf.Tensor:
    """True when every present tensor holds only finite values (dense or IndexedSlices)."""
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
    """The current values of a block's variables, in the norm's compute dtype."""
    return norms_lib.dense_block([_read(v) for v in variables])


def transform_gradients(
    grads: Sequence[Any],
    variables: Sequence[Any] | None = None,
    *,
    transform: str,
    norm: str = "l2",
    blocks: blocks_lib.BlockSpec = "layer",
    alpha: float = 0.02,
    threshold: float = 1.0,
    exclude: Sequence[str] = (),
    epsilon: float = 0.0,
    max_scale: float | None = None,
    groups: Sequence = (),
) -> list:
    """Apply a block transform to ``grads`` (one per variable) and return the new list.

    The arguments are :class:`TransformConfig`'s. Building the transform each
    call is cheap Python work; in a loop, build one :class:`BlockTransform`.
    ``grads`` and ``variables`` are two lists of the same length (not the
    ``(gradient, variable)`` pairs of ``apply_gradients``: that is a
    ``TypeError``); a non-float gradient is a ``TypeError``, a count or
    shape mismatch a ``ValueError``, each naming the variable.
    """
    if variables is None:
        if grads and all(_is_pair(g) for g in grads):
            check_gradients(grads, ())  # the message about pairs
        raise TypeError("transform_gradients(grads, variables, ...): pass the variables too.")
    config = TransformConfig(
        transform=transform,
        norm=norm,
        blocks=blocks,
        alpha=alpha,
        threshold=threshold,
        exclude=tuple(exclude) if not isinstance(exclude, str) else (exclude,),
        epsilon=epsilon,
        max_scale=max_scale,
        groups=tuple(groups),
    )
    new_grads, _ = BlockTransform(config)(grads, variables, with_norms=False)
    return new_grads
