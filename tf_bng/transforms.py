"""The Keras-style convenience over :mod:`tf_bng.gradient_transforms`: transforms by name.

Configs, the wrappers and the seed's users name a transform with a string;
:class:`TransformConfig` validates the settings and :meth:`TransformConfig.build`
composes them from the small transforms (groups become routes, ``exclude`` a
mask). Every transform multiplies all tensors of a block by one scalar
computed from the block's gradient norm ``n`` (and, for NGadap, the same norm
``m`` of the block's variables):

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
from typing import Any

import tensorflow as tf

from tf_bng import blocks as blocks_lib
from tf_bng import gradient_transforms as gt
from tf_bng import norms as norms_lib
from tf_bng import selectors as selectors_lib
from tf_bng.gradient_transforms import scales
from tf_bng.gradient_transforms.protocol import GradientTransform, TransformResult, present_mask

__all__ = [
    "TRANSFORMS",
    "TransformConfig",
    "BlockTransform",
    "GROUP_OVERRIDES",
    "transform_gradients",
    "check_gradients",
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

    Attributes:
        transform: One of :data:`TRANSFORMS`.
        norm: A registered norm name (see :func:`tf_bng.register_norm`).
        blocks: One of :data:`tf_bng.blocks.BLOCK_MODES`, or a callable ``variable -> key``
            (variables with equal keys form one block).
        alpha: The trust coefficient of ``ng_adap`` (> 0).
        threshold: The norm above which ``clip`` / ``global_clip`` scale a block down (> 0).
        exclude: Regexes (or one) searched in each ``variable.path``; matching variables keep
            their gradient and join no block.
        epsilon: Added to every gradient norm (>= 0).
        max_scale: Upper bound on every factor (> 0), or None.
        groups: ``(selector, overrides)`` pairs, as described above.

    Raises:
        ValueError: An unknown transform, norm or block mode (naming the valid ones), a bad
            number, a bad ``exclude`` pattern, or a malformed group.
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
        # The numbers are validated by the rules that use them (one check per key).
        scales.TrustRatio(alpha=self.alpha, epsilon=self.epsilon, max_scale=self.max_scale)
        scales.Clip(threshold=self.threshold)
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
        """The settings of a group: the top level with ``overrides``, without groups or exclude.

        Args:
            overrides: Settings (keys of :data:`GROUP_OVERRIDES`) that replace the top level's.

        Returns:
            A validated :class:`TransformConfig`.
        """
        return dataclasses.replace(self, groups=(), exclude=(), **overrides)

    @property
    def effective_blocks(self) -> blocks_lib.BlockSpec:
        """The block mode that applies: ``"global"`` for ``global_clip``, else ``blocks``."""
        return "global" if self.transform == "global_clip" else self.blocks

    def rules(self) -> tuple[TransformConfig, ...]:
        """The top-level settings and one per group, each without groups or exclude."""
        top = dataclasses.replace(self, groups=(), exclude=())
        return (top,) + tuple(self.group_config(o) for _, o in self.groups)

    def build(self) -> GradientTransform:
        """These settings as a composition of :mod:`tf_bng.gradient_transforms`.

        Returns:
            ``masked(not exclude, route(groups, default=top level))``, reduced to what the
            settings use (no route without groups, no mask without ``exclude``).
        """
        top = _scale_blocks(self.rules()[0])
        transform = top
        if self.groups:
            routes = []
            for selector, overrides in self.groups:
                cfg = self.group_config(overrides)
                routes.append((selector, None if cfg.transform == "none" else _scale_blocks(cfg)))
            transform = gt.route(routes, default=top)
        if self.exclude:
            patterns = blocks_lib.compile_patterns(self.exclude)
            kept = selectors_lib.Predicate(
                lambda v: not any(p.search(blocks_lib.variable_path(v)) for p in patterns)
            )
            transform = gt.masked(kept, transform)
        return transform


def _scale_blocks(config: TransformConfig) -> gt.ScaleBlocks:
    """The driver for one set of settings (no groups, no exclude)."""
    kind = config.transform
    if kind == "none":
        rule = scales.Unchanged()
    elif kind == "ng":
        rule = scales.Normalize(epsilon=config.epsilon, max_scale=config.max_scale)
    elif kind == "ng_adap":
        rule = scales.TrustRatio(
            alpha=config.alpha, epsilon=config.epsilon, max_scale=config.max_scale
        )
    else:  # clip, global_clip
        rule = scales.Clip(
            threshold=config.threshold, epsilon=config.epsilon, max_scale=config.max_scale
        )
    return gt.ScaleBlocks(rule, norm=config.norm, blocks=config.effective_blocks)


class BlockTransform(GradientTransform):
    """A :class:`TransformConfig` built as a composition of gradient transforms.

    The config's transform becomes a :class:`~tf_bng.gradient_transforms.ScaleBlocks`
    (``ng``: normalize, ``ng_adap``: trust ratio, ``clip``: block clip,
    ``global_clip``: one block, ``none``: norms measured only); parameter groups
    become a :func:`~tf_bng.gradient_transforms.route` (a group with transform
    ``none`` passes its variables unchanged); ``exclude`` becomes a mask. Blocks
    are formed on the full variable list and cached by variable identity.

    Args:
        config: The settings; or pass :class:`TransformConfig`'s keywords instead.

    Raises:
        TypeError: both a config and keywords.
        ValueError: as :class:`TransformConfig`.
    """

    def __init__(self, config: TransformConfig | None = None, **kwargs):
        if config is None:
            config = TransformConfig(**kwargs)
        elif kwargs:
            raise TypeError("Pass either a TransformConfig or keyword settings, not both.")
        self.config = config
        self.transform = config.build()

    @property
    def xla_compatible(self) -> bool:
        return self.transform.xla_compatible

    def layout(self, variables: Sequence[Any], present: Sequence[bool]) -> blocks_lib.Partition:
        patterns = blocks_lib.compile_patterns(self.config.exclude)
        skip = {i for i, p in enumerate(present) if not p}
        excluded = [
            i
            for i, v in enumerate(variables)
            if i not in skip and any(p.search(blocks_lib.variable_path(v)) for p in patterns)
        ]
        blocks_lib.warn_if_nothing_to_do(variables, patterns, excluded, skip)
        return self.transform.layout(variables, present)

    def partition(self, variables: Sequence[Any], grads: Sequence[Any] | None = None):
        """The reported blocks as a :class:`~tf_bng.blocks.Partition`.

        Args:
            variables: The variables the gradients belong to.
            grads: The gradients; those that are ``None`` join no block (default: all present).

        Returns:
            Block names, index tuples into ``variables``, and the excluded indices.
        """
        present = [True] * len(variables) if grads is None else present_mask(grads)
        return self.layout(list(variables), present)

    def apply(self, grads: Sequence[Any], variables: Sequence[Any]) -> TransformResult:
        """The transformed gradients with every block's norm and scale.

        Args:
            grads: One gradient (or None) per variable.
            variables: The variables, in the same order.

        Returns:
            A :class:`~tf_bng.gradient_transforms.TransformResult`; ``finite`` covers every
            gradient, excluded ones included.

        Raises:
            TypeError, ValueError: as :func:`check_gradients`.
        """
        grads, variables = list(grads), list(variables)
        check_gradients(grads, variables)
        self.layout(variables, present_mask(grads))  # the warnings, at trace time
        # The arithmetic is in the chain ``build()`` made: for "ng" with no groups or
        # exclude, ``ScaleBlocks(Normalize())`` (gradient_transforms/scale_blocks.py).
        with tf.name_scope("block_transform"):
            return self.transform.apply(grads, variables)

    def __call__(
        self, grads: Sequence[Any], variables: Sequence[Any], *, with_norms: bool = True
    ) -> tuple[list, tf.Tensor | None]:
        """``(new gradients, block norms or None)``; see :meth:`apply`."""
        grads, variables = list(grads), list(variables)
        if self.config.transform == "none" and not self.config.groups and not with_norms:
            check_gradients(grads, variables)
            self.layout(variables, present_mask(grads))  # the warnings
            return grads, None
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


def transform_gradients(
    grads: Sequence[Any],
    variables: Sequence[Any] | None = None,
    *,
    transform: str | GradientTransform,
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

    Building the transform each call is cheap Python work; in a loop, build
    one :class:`BlockTransform` (or composition) and call its ``apply``.

    Args:
        grads: One gradient (tensor, ``IndexedSlices`` or None) per variable; not the
            ``(gradient, variable)`` pairs of ``apply_gradients``.
        variables: The variables, in the same order.
        transform: A name of :data:`TRANSFORMS`, or a composed
            :class:`~tf_bng.gradient_transforms.GradientTransform` (then the other
            settings must stay at their defaults).
        norm: As :class:`TransformConfig`.
        blocks: As :class:`TransformConfig`.
        alpha: As :class:`TransformConfig`.
        threshold: As :class:`TransformConfig`.
        exclude: As :class:`TransformConfig`.
        epsilon: As :class:`TransformConfig`.
        max_scale: As :class:`TransformConfig`.
        groups: As :class:`TransformConfig`.

    Returns:
        The new gradients (None stays None).

    Raises:
        TypeError: pairs instead of two lists, no variables, a non-float gradient, or settings
            next to a composed transform.
        ValueError: a count or shape mismatch (naming the variable), or a bad setting.
    """
    if variables is None:
        if grads and all(_is_pair(g) for g in grads):
            check_gradients(grads, ())  # the message about pairs
        raise TypeError("transform_gradients(grads, variables, ...): pass the variables too.")
    if isinstance(transform, GradientTransform):
        settings = dict(norm=norm, blocks=blocks, alpha=alpha, threshold=threshold)
        settings.update(exclude=tuple(exclude), epsilon=epsilon, max_scale=max_scale)
        settings.update(groups=tuple(groups))
        defaults = TransformConfig()
        changed = sorted(k for k, v in settings.items() if v != getattr(defaults, k))
        if changed:
            raise TypeError(
                f"transform is a composed GradientTransform; {changed} belong to string "
                "transforms (build them into the composition instead)."
            )
        grads, variables = list(grads), list(variables)
        check_gradients(grads, variables)
        return transform.apply(grads, variables).grads
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
