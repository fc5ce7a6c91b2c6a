"""Independent float64 reference for the block transforms (issue 2's spec).

Written from the issue text, not from tf_bng: the tests compare the library
against these functions. Gradients are plain numpy arrays (IndexedSlices are
densified here with ``np.add.at``), blocks are lists of variable indices.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

import numpy as np


def _flat(block: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(g, np.float64).ravel() for g in block])


def _l1(x):
    return np.sum(np.abs(x))


def _l2(x):
    return np.sqrt(np.sum(x * x))


NORMS: dict[str, Callable[[np.ndarray], float]] = {
    "l1": _l1,
    "l2": _l2,
    "l1_l2": lambda x: (_l1(x) + _l2(x)) / 2,
    "avg_l1": lambda x: np.mean(np.abs(x)),
    "avg_l2": lambda x: np.sqrt(np.mean(x * x)),
    "avg_l1_l2": lambda x: (np.mean(np.abs(x)) + np.sqrt(np.mean(x * x))) / 2,
    "max": lambda x: np.max(np.abs(x)),
    "min_max": lambda x: (np.max(np.abs(x)) + np.min(np.abs(x))) / 2,
    "std": lambda x: np.std(x),  # population standard deviation (ddof=0)
}
TRANSFORMS = ("none", "ng", "ng_adap", "clip", "global_clip")


def block_norm(norm: str | Callable, block: Sequence[np.ndarray]) -> float:
    fn = NORMS[norm] if isinstance(norm, str) else norm
    return float(fn(_flat(block)))


def densify(grad) -> np.ndarray | None:
    """A TF gradient (dense or IndexedSlices) as float64 numpy, duplicates summed."""
    if grad is None:
        return None
    if hasattr(grad, "indices") and hasattr(grad, "dense_shape"):
        dense = np.zeros(np.asarray(grad.dense_shape), np.float64)
        np.add.at(dense, np.asarray(grad.indices), np.asarray(grad.values, np.float64))
        return dense
    return np.asarray(grad, np.float64)


def scale(
    transform: str,
    n: float,
    m: float,
    *,
    alpha: float,
    threshold: float,
    eps: float,
    max_scale: float | None = None,
) -> float:
    """The factor applied to every tensor of a block (issue 2, item 3; issue 11's max_scale)."""
    if transform == "none" or n == 0:
        return 1.0
    if transform == "ng":
        s = 1.0 / (n + eps)
    elif transform == "ng_adap":
        if m == 0:
            return 1.0
        s = alpha * m / (n + eps)
    elif transform in ("clip", "global_clip"):
        s = min(1.0, threshold / (n + eps))
    else:
        raise ValueError(transform)
    return s if max_scale is None else min(s, max_scale)


def transform(
    grads: Sequence[np.ndarray | None],
    values: Sequence[np.ndarray],
    blocks: Sequence[Sequence[int]],
    *,
    transform: str,
    norm: str | Callable = "l2",
    alpha: float = 0.02,
    threshold: float = 1.0,
    eps: float = 0.0,
    max_scale: float | None = None,
) -> list[np.ndarray | None]:
    """Reference transform; indices in no block (excluded, None) pass unchanged."""
    out = list(grads)
    for ix in blocks:
        n = block_norm(norm, [grads[i] for i in ix])
        m = block_norm(norm, [values[i] for i in ix])
        s = scale(transform, n, m, alpha=alpha, threshold=threshold, eps=eps, max_scale=max_scale)
        for i in ix:
            out[i] = grads[i] * s
    return out


# --- partitions (lists of index lists; compare them with `as_set`) -----------


def as_set(blocks: Sequence[Sequence[int]]) -> set[frozenset[int]]:
    return {frozenset(ix) for ix in blocks}


def owned_trainable(layer) -> list:
    """Trainable variables a layer owns directly (not through its sub-layers)."""
    inner = set()
    for sub in layer._flatten_layers(include_self=False, recursive=False):
        inner.update(id(w) for w in sub.trainable_weights)
    return [w for w in layer.trainable_weights if id(w) not in inner]


def layers_owning_variables(model) -> list:
    return [
        layer
        for layer in model._flatten_layers(include_self=True, recursive=True)
        if owned_trainable(layer)
    ]


def layer_blocks(model, variables: Sequence) -> list[list[int]]:
    """The paper's blocks: one per Keras layer object, by object identity."""
    index = {id(v): i for i, v in enumerate(variables)}
    blocks = []
    for layer in layers_owning_variables(model):
        ix = [index[id(w)] for w in owned_trainable(layer) if id(w) in index]
        if ix:
            blocks.append(ix)
    return blocks


def keyed_blocks(variables: Sequence, key: Callable[[object], Hashable]) -> list[list[int]]:
    groups: dict[Hashable, list[int]] = {}
    for i, v in enumerate(variables):
        groups.setdefault(key(v), []).append(i)
    return list(groups.values())


def blocks_for(mode, model, variables: Sequence, drop: Sequence[int] = ()) -> list[list[int]]:
    """Reference partition for a blocks mode, minus the indices in ``drop``."""
    if mode == "layer":
        blocks = layer_blocks(model, variables)
    elif mode == "variable":
        blocks = [[i] for i in range(len(variables))]
    elif mode == "global":
        blocks = [list(range(len(variables)))]
    else:
        blocks = keyed_blocks(variables, mode)
    kept = [[i for i in ix if i not in set(drop)] for ix in blocks]
    return [ix for ix in kept if ix]
