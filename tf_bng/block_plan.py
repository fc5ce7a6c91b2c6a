"""Which blocks a transform acts on, and with which settings: groups, exclude, block modes.

A :class:`BlockPlan` is computed once per variable list, in Python at trace
time: every variable goes to the first parameter group whose selector
matches it (or to the top-level settings), blocks are formed *within* each
group (a layer whose kernel and bias sit in different groups gives two
blocks, the group's one named ``<layer>@group<i>``), and variables matched
by ``exclude`` or by a group whose transform is ``none`` join no block.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from tf_bng import blocks as blocks_lib

__all__ = ["BlockPlan", "plan_blocks"]


@dataclasses.dataclass(frozen=True)
class BlockPlan:
    """Blocks (index tuples into the variable list), their names and their rule index.

    ``rules[b]`` is 0 for the top-level settings and ``i`` for group ``i``
    (1-based, in the order given).
    """

    partition: blocks_lib.Partition
    rules: tuple[int, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return self.partition.names

    @property
    def blocks(self) -> tuple[tuple[int, ...], ...]:
        return self.partition.blocks


def plan_blocks(
    variables: Sequence[Any],
    *,
    blocks: Sequence[blocks_lib.BlockSpec],
    excluded_rules: Sequence[bool],
    selectors: Sequence[Callable[[Any], bool]],
    exclude: Sequence[str] = (),
    skip: Sequence[int] = (),
) -> BlockPlan:
    """Assign variables to rules (0: top level, i: group i) and partition each rule's share.

    ``blocks[r]`` is rule r's block mode; ``excluded_rules[r]`` drops rule
    r's variables (a group with transform ``none``). ``exclude`` regexes and
    ``skip`` (None gradients) are applied before the groups.
    """
    patterns = blocks_lib.compile_patterns(exclude)
    skip_set = set(skip)
    excluded = [
        i
        for i, v in enumerate(variables)
        if i not in skip_set and any(p.search(blocks_lib.variable_path(v)) for p in patterns)
    ]
    blocks_lib.warn_if_nothing_to_do(variables, patterns, excluded, skip_set)
    rule_of: dict[int, int] = {}
    for i, v in enumerate(variables):
        if i in skip_set or i in excluded:
            continue
        rule_of[i] = next((g + 1 for g, select in enumerate(selectors) if select(v)), 0)
    excluded += [i for i, r in rule_of.items() if excluded_rules[r]]
    names, ix_blocks, rules = [], [], []
    for rule, mode in enumerate(blocks):
        if excluded_rules[rule]:
            continue
        members = {i for i, r in rule_of.items() if r == rule}
        if not members:
            continue
        others = [i for i in range(len(variables)) if i not in members]
        part = blocks_lib.partition_variables(variables, mode, skip=others)
        suffix = f"@group{rule}" if rule else ""
        names += [name + suffix for name in part.names]
        ix_blocks += list(part.blocks)
        rules += [rule] * len(part.blocks)
    return BlockPlan(
        partition=blocks_lib.Partition(
            names=tuple(names), blocks=tuple(ix_blocks), excluded=tuple(sorted(excluded))
        ),
        rules=tuple(rules),
    )
