"""Combinators: run transforms one after another, or route variables to different ones.

``chain`` is sequential composition; ``route`` sends each variable to the first
route whose selector matches it (parameter groups); ``masked`` applies a
transform to the matching variables only (exclusions). Routed transforms see
the full variable list with the other routes' gradients set to ``None``, so
blocks are formed exactly as on the full model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from tf_bng import blocks as blocks_lib
from tf_bng import selectors as selectors_lib
from tf_bng.gradient_transforms import numerics
from tf_bng.gradient_transforms.protocol import GradientTransform, TransformResult

__all__ = ["Chain", "Route", "chain", "route", "masked"]


def _check_transform(obj: Any, where: str) -> GradientTransform:
    if not isinstance(obj, GradientTransform):
        raise TypeError(
            f"{where} must be a tf_bng.gradient_transforms.GradientTransform (e.g. normalize(), "
            f"trust_ratio(), chain(...)); got {obj!r}."
        )
    return obj


class Chain(GradientTransform):
    """Transforms applied in order, each to the previous one's output.

    Reports the blocks of every stage in order (each stage's norms are of its
    own input); a block name repeated by a later stage gets ``#<stage>`` appended.
    ``finite`` is true when every stage's input was finite.

    Args:
        *transforms: The stages (at least one).

    Raises:
        TypeError: a stage is not a :class:`GradientTransform`.
        ValueError: no stage.
    """

    def __init__(self, *transforms: GradientTransform):
        if not transforms:
            raise ValueError("chain() needs at least one transform.")
        self.transforms = tuple(
            _check_transform(t, f"chain stage {k}") for k, t in enumerate(transforms)
        )

    @property
    def xla_compatible(self) -> bool:
        return all(t.xla_compatible for t in self.transforms)

    def layout(self, variables: Sequence[Any], present: Sequence[bool]) -> blocks_lib.Partition:
        names, blocks, seen = [], [], set()
        for k, t in enumerate(self.transforms):
            part = t.layout(variables, present)
            for name, ix in zip(part.names, part.blocks):
                name = name if name not in seen else f"{name}#{k}"
                seen.add(name)
                names.append(name)
                blocks.append(ix)
        return _partition(names, blocks, present)

    def apply(self, grads: Sequence[Any], variables: Sequence[Any]) -> TransformResult:
        grads, variables = list(grads), list(variables)
        norms, scales, finite = [], [], []
        for t in self.transforms:
            result = t.apply(grads, variables)
            grads = list(result.grads)
            norms.append(result.norms)
            scales.append(result.scales)
            finite.append(result.finite)
        return TransformResult(
            grads, tf.concat(norms, 0), tf.concat(scales, 0), tf.reduce_all(tf.stack(finite))
        )


class Route(GradientTransform):
    """Each variable to the transform of the first route whose selector matches it.

    Variables no route selects go to ``default``; with ``default=None`` they
    pass unchanged and report no block. Blocks of route ``i`` (1-based) are
    named ``<block>@group<i>``, the default's keep their names; the default's
    blocks come first, then each route's in order. A route whose transform is
    None passes its variables unchanged (an exclusion).

    Args:
        routes: ``(selector, transform or None)`` pairs; a selector is a
            :mod:`tf_bng.selectors` selector, a compiled regex on ``variable.path``
            or a callable variable -> bool.
        default: The transform of the other variables, or None.
        group_names: Append ``@group<i>`` to route ``i``'s block names (False: keep them,
            as :func:`masked` does).

    Raises:
        TypeError: a selector or transform of the wrong kind.
    """

    def __init__(
        self,
        routes: Sequence[tuple[Any, GradientTransform | None]],
        default: GradientTransform | None = None,
        *,
        group_names: bool = True,
    ):
        self.group_names = bool(group_names)
        checked = []
        for k, route_ in enumerate(routes):
            selector, transform = route_
            if transform is not None:
                _check_transform(transform, f"route {k + 1}'s transform")
            checked.append((selectors_lib.as_selector(selector), transform))
        self.routes = tuple(checked)
        self.default = None if default is None else _check_transform(default, "default")
        self._cache: dict[tuple, tuple[tuple[int, ...], tuple]] = {}

    @property
    def xla_compatible(self) -> bool:
        return all(t.xla_compatible for t in self._members() if t is not None)

    def _members(self) -> list:
        return [self.default] + [t for _, t in self.routes]

    def assignment(self, variables: Sequence[Any]) -> tuple[int, ...]:
        """Per variable, 0 for the default or the 1-based index of its route (cached).

        The first route whose selector matches wins. Cached per list of variables, so the
        selectors run once per trace, not once per call.

        Args:
            variables: Every variable of the step, in order.

        Returns:
            One int per variable.
        """
        key = tuple(id(v) for v in variables)
        entry = self._cache.get(key)
        if entry is None:
            owner = tuple(
                next((k + 1 for k, (select, _) in enumerate(self.routes) if select(v)), 0)
                for v in variables
            )
            entry = self._cache[key] = (owner, tuple(variables))
        return entry[0]

    def _share(self, values: Sequence[Any], owner: Sequence[int], k: int) -> list:
        return [x if o == k else None for x, o in zip(values, owner)]

    def layout(self, variables: Sequence[Any], present: Sequence[bool]) -> blocks_lib.Partition:
        owner = self.assignment(variables)
        names, blocks = [], []
        for k, t in enumerate(self._members()):
            if t is None:
                continue
            mine = [bool(p) and o == k for p, o in zip(present, owner)]
            if not any(mine):
                continue
            part = t.layout(variables, mine)
            suffix = f"@group{k}" if k and self.group_names else ""
            names += [name + suffix for name in part.names]
            blocks += list(part.blocks)
        return _partition(names, blocks, present)

    def apply(self, grads: Sequence[Any], variables: Sequence[Any]) -> TransformResult:
        grads, variables = list(grads), list(variables)
        owner = self.assignment(variables)
        out = list(grads)
        norms, scales, finite = [], [], []
        for k, t in enumerate(self._members()):
            share = self._share(grads, owner, k)
            if all(g is None for g in share):
                continue
            if t is None:
                finite.append(numerics.all_finite(share))
                continue
            result = t.apply(share, variables)
            for i, o in enumerate(owner):
                if o == k:
                    out[i] = result.grads[i]
            norms.append(result.norms)
            scales.append(result.scales)
            finite.append(result.finite)
        empty = tf.zeros([0], tf.float32)
        return TransformResult(
            out,
            tf.concat(norms, 0) if norms else empty,
            tf.concat(scales, 0) if scales else empty,
            tf.reduce_all(tf.stack(finite)) if finite else tf.constant(True),
        )


def _partition(names: list, blocks: list, present: Sequence[bool]) -> blocks_lib.Partition:
    covered = {i for ix in blocks for i in ix}
    excluded = tuple(i for i, p in enumerate(present) if p and i not in covered)
    return blocks_lib.Partition(names=tuple(names), blocks=tuple(blocks), excluded=excluded)


def chain(*transforms: GradientTransform) -> GradientTransform:
    """Apply ``transforms`` one after another (see :class:`Chain`); one transform is returned as is.

    Args:
        *transforms: The stages, first applied first.

    Returns:
        The composed transform.

    Raises:
        TypeError: a stage is not a :class:`GradientTransform`.
        ValueError: no stage.
    """
    if len(transforms) == 1:
        return _check_transform(transforms[0], "chain stage 0")
    return Chain(*transforms)


def route(
    routes: Sequence[tuple[Any, GradientTransform | None]],
    default: GradientTransform | None = None,
) -> Route:
    """Send each variable to the first route whose selector matches it (see :class:`Route`).

    Args:
        routes: ``(selector, transform or None)`` pairs, tried in order.
        default: The transform of the variables no route selects; None leaves them unchanged.

    Returns:
        The routing transform.

    Raises:
        TypeError: a selector or transform of the wrong kind.
    """
    return Route(routes, default)


def masked(selector: Any, transform: GradientTransform) -> Route:
    """``transform`` on the variables ``selector`` matches; the others pass unchanged.

    Args:
        selector: A :mod:`tf_bng.selectors` selector, compiled regex or callable variable -> bool.
        transform: The transform of the selected variables.

    Returns:
        The masked transform (a :class:`Route` with no default).

    Raises:
        TypeError: a selector or transform of the wrong kind.
    """
    return Route([(selector, transform)], default=None, group_names=False)
