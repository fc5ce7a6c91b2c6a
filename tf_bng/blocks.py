"""Partition variables into blocks.

The paper normalizes per layer (kernel, bias, gamma, beta... of one layer form
one block); the keras seed per tensor. Both, one global block, and any user
grouping are a :class:`Partition` of variable indices, computed once in Python
at trace time so the compiled step carries no grouping logic.

Keras does not scope a nested functional model's variable paths, so two
backbones with the same layer names yield equal paths ("Conv1/kernel" twice).
"layer" and "variable" still give such layers separate blocks (named
"Conv1", "Conv1.2", ...): see ``_group``.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections.abc import Callable, Hashable, Sequence
from typing import Any

__all__ = ["BLOCK_MODES", "Partition", "partition_variables", "layer_key", "variable_path"]

BLOCK_MODES = ("layer", "variable", "global")
BlockSpec = str | Callable[[Any], Hashable]


def variable_path(variable: Any) -> str:
    """Keras 3 ``variable.path`` (``"model/dense/kernel"``); tf.Variable name otherwise.

    Args:
        variable: A Keras or TensorFlow variable (anything with ``.path`` or ``.name``).

    Returns:
        The path, or the name without its ``:0`` suffix.

    Raises:
        TypeError: If ``variable`` has neither ``.path`` nor ``.name``.
    """
    path = getattr(variable, "path", None)
    if path:
        return str(path)
    name = getattr(variable, "name", None)
    if name is None:
        raise TypeError(f"Cannot derive a path for {variable!r}: it has neither .path nor .name.")
    return str(name).split(":")[0]


def layer_key(variable: Any) -> str:
    """The owning layer's path: the variable path without its last component.

    ``"model/block_1/dense/kernel"`` -> ``"model/block_1/dense"``, so nested
    models and sub-layers each get their own block.

    Args:
        variable: A Keras or TensorFlow variable.

    Returns:
        The block key of ``blocks="layer"``; a path without ``/`` is its own key.
    """
    path = variable_path(variable)
    head, _, _ = path.rpartition("/")
    return head or path


@dataclasses.dataclass(frozen=True)
class Partition:
    """Blocks as tuples of indices into the variable list, plus excluded indices.

    ``len(partition)`` is the number of blocks.

    Attributes:
        names: One name per block (the layer path for ``"layer"``), as the metrics log
            reports it.
        blocks: Per block, the indices of its variables in the partitioned list.
        excluded: The indices of the variables ``exclude`` matched: they join no block.
    """

    names: tuple[str, ...]
    blocks: tuple[tuple[int, ...], ...]
    excluded: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.blocks)


def _key_fn(blocks: BlockSpec) -> Callable[[Any], Hashable]:
    if callable(blocks):
        return blocks
    if blocks == "layer":
        return layer_key
    if blocks == "variable":
        return variable_path
    if blocks == "global":
        return lambda v: "global"
    raise ValueError(
        f"Unknown blocks {blocks!r}. Valid choices: {', '.join(map(repr, BLOCK_MODES))}, "
        "or a callable mapping a variable to a block key."
    )


def compile_patterns(exclude: Sequence[str] | str) -> tuple[re.Pattern, ...]:
    if isinstance(exclude, str):
        exclude = (exclude,)
    try:
        return tuple(re.compile(p) for p in exclude)
    except re.error as e:
        raise ValueError(f"Invalid exclude pattern: {e}") from None


def _colliding_keys(keys: Sequence[Hashable], paths: Sequence[str]) -> set:
    """Keys shared by distinct variables with the same path.

    Keras builds a nested functional model's layers outside the outer model's
    name scope, so two backbones (or a head reusing a layer name) give
    different variables the same ``path``, e.g. ``"Conv1/kernel"`` twice.
    """
    seen: dict[tuple, int] = {}
    colliding = set()
    for i, (key, path) in enumerate(zip(keys, paths)):
        if seen.setdefault((key, path), i) != i:
            colliding.add(key)
    return colliding


def _group(
    variables: Sequence[Any], key_of: Callable[[Any], Hashable], split_collisions: bool
) -> list[tuple[str, list[int]]]:
    """Group indices by key, in first-seen order, as ``[(block name, indices)]``.

    With ``split_collisions``, a key whose paths collide is split into runs of
    consecutive variables without a repeated path: Keras lists each layer's own
    variables together, so each run is one layer. Other keys ignore the order.
    """
    keys = [key_of(v) for v in variables]
    paths = [variable_path(v) for v in variables]
    colliding = _colliding_keys(keys, paths) if split_collisions else set()
    groups: dict[tuple[Hashable, int], list[int]] = {}
    run_of: dict[Hashable, int] = {}
    for i, key in enumerate(keys):
        run = run_of.get(key, 1)
        current = groups.get((key, run), [])
        if key in colliding and current:
            if current[-1] != i - 1 or paths[i] in {paths[j] for j in current}:
                run = run_of[key] = run + 1
        groups.setdefault((key, run), []).append(i)
    return [(_run_name(key, run), ix) for (key, run), ix in groups.items()]


def _run_name(key: Hashable, run: int) -> str:
    """``"conv"`` for the first layer with a key, then ``"conv.2"``, ``"conv.3"``..."""
    return str(key) if run == 1 else f"{key}.{run}"


def partition_variables(
    variables: Sequence[Any],
    blocks: BlockSpec = "layer",
    exclude: Sequence[str] | str = (),
    *,
    skip: Sequence[int] = (),
) -> Partition:
    """Group ``variables`` into blocks.

    Blocks are formed on the full list first, so which gradients are ``None``
    never changes which variables share a block. Warns once when the
    variables are empty, an ``exclude`` pattern matches nothing, or every
    variable is excluded.

    Args:
        variables: The variables, in the order of their gradients.
        blocks: One of :data:`BLOCK_MODES` or a callable ``variable -> key``: variables
            with equal keys form one block.
        exclude: Regexes searched in each ``variable.path``; matches join no block.
        skip: Indices to leave out silently (variables with a ``None`` gradient).

    Returns:
        The partition; blocks left empty by ``exclude`` or ``skip`` are dropped.

    Raises:
        ValueError: If ``blocks`` is an unknown mode or an ``exclude`` pattern is not a
            valid regex.
    """
    key_of = _key_fn(blocks)
    patterns = compile_patterns(exclude)
    skip_set = set(skip)
    excluded = [
        i
        for i, v in enumerate(variables)
        if i not in skip_set and any(p.search(variable_path(v)) for p in patterns)
    ]
    warn_if_nothing_to_do(variables, patterns, excluded, skip_set)
    dropped = skip_set.union(excluded)
    groups = _group(variables, key_of, split_collisions=blocks in ("layer", "variable"))
    kept = [(name, tuple(i for i in ix if i not in dropped)) for name, ix in groups]
    kept = [(name, ix) for name, ix in kept if ix]
    return Partition(
        names=tuple(name for name, _ in kept),
        blocks=tuple(ix for _, ix in kept),
        excluded=tuple(excluded),
    )


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    """``warnings.warn(message)`` the first time this process sees ``message``.

    A plan is built at every trace (and per parameter group): without this
    the same warning would repeat.
    """
    if message not in _WARNED:
        _WARNED.add(message)
        warnings.warn(message, UserWarning, stacklevel=4)


def warn_if_nothing_to_do(variables, patterns, excluded, skip_set) -> None:
    """Warn when the transform would touch nothing, or an ``exclude`` pattern matches nothing."""
    if not variables:
        _warn_once(
            "The block transform got no variables: the model has no trainable variables, so "
            "nothing is trained."
        )
        return
    paths = [variable_path(v) for v in variables]
    for pattern in patterns:
        if not any(pattern.search(path) for path in paths):
            shown = ", ".join(paths[:5]) + (", ..." if len(paths) > 5 else "")
            _warn_once(
                f"The exclude pattern {pattern.pattern!r} matches no variable path ({shown}); "
                "check it (patterns are regexes searched in variable.path)."
            )
    remaining = [i for i in range(len(variables)) if i not in skip_set]
    if remaining and len(excluded) == len(remaining):
        _warn_once(
            f"Every variable is excluded by exclude={tuple(p.pattern for p in patterns)!r}: the "
            "block transform changes no gradient."
        )
