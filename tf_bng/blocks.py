"""Partition variables into blocks.

The paper normalizes per layer (kernel, bias, gamma, beta... of one layer form
one block); the keras seed per tensor. Both, one global block, and any user
grouping are a :class:`Partition` of variable indices, computed once in Python
at trace time so the compiled step carries no grouping logic.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable, Hashable, Sequence, Union

__all__ = ["BLOCK_MODES", "Partition", "partition_variables", "layer_key", "variable_path"]

BLOCK_MODES = ("layer", "variable", "global")
BlockSpec = Union[str, Callable[[Any], Hashable]]


def variable_path(variable: Any) -> str:
    """Keras 3 ``variable.path`` (``"model/dense/kernel"``); tf.Variable name otherwise."""
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
    """
    path = variable_path(variable)
    head, _, _ = path.rpartition("/")
    return head or path


@dataclasses.dataclass(frozen=True)
class Partition:
    """Blocks as tuples of indices into the variable list, plus excluded indices."""

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


def partition_variables(
    variables: Sequence[Any],
    blocks: BlockSpec = "layer",
    exclude: Sequence[str] | str = (),
    *,
    skip: Sequence[int] = (),
) -> Partition:
    """Group ``variables`` into blocks.

    ``exclude`` regexes are searched in each ``variable.path``; matches join no
    block. ``skip`` lists indices to leave out silently (variables with a
    ``None`` gradient).
    """
    key_of = _key_fn(blocks)
    patterns = compile_patterns(exclude)
    skip_set = set(skip)
    order: dict[Hashable, list[int]] = {}
    excluded = []
    for i, v in enumerate(variables):
        if i in skip_set:
            continue
        path = variable_path(v)
        if any(p.search(path) for p in patterns):
            excluded.append(i)
            continue
        order.setdefault(key_of(v), []).append(i)
    return Partition(
        names=tuple(str(k) for k in order),
        blocks=tuple(tuple(ix) for ix in order.values()),
        excluded=tuple(excluded),
    )
