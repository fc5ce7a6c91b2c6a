"""A look at the first batch of each split before the compiled loop sees any.

Inside a ``tf.function`` on several replicas, a label out of range or a
wrongly shaped input fails deep in a kernel (or silently gives NaN); here,
in eager NumPy, the same problems fail with a :class:`DataError` that says
which split, which example and what was expected. NaN inputs that show up
later in the stream are caught by the train step's non-finite guard instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from tf_bng.data.spec import DatasetSpec
from tf_bng.errors import DataError
from tf_bng.step.batches import unpack_batch

__all__ = ["check_batch", "check_first_batches", "model_input_shape"]

_LABELLED = ("classification", "language_model")


def model_input_shape(model: Any, spec: DatasetSpec) -> tuple:
    """The per-example input shape the model was built for (the spec's for subclassed models).

    Args:
        model: A Keras model; a functional one knows its inputs, a subclassed one may not.
        spec: The dataset's spec, whose ``input_shape`` is the fallback.

    Returns:
        The input shape without the batch dimension (``None`` for free dimensions).
    """
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if inputs:
        return tuple(inputs[0].shape[1:])
    return tuple(spec.input_shape)


def _shape_matches(actual: Sequence[int], expected: Sequence[int | None]) -> bool:
    return len(actual) == len(expected) and all(
        e is None or int(a) == int(e) for a, e in zip(actual, expected)
    )


def _first(mask: np.ndarray) -> int:
    """The example (row) index of the first True of ``mask``."""
    return int(np.argwhere(mask)[0][0])


def _check_inputs(x: np.ndarray, expected: tuple, where: str, dataset: str) -> None:
    if not _shape_matches(x.shape[1:], expected):
        raise DataError(
            f"{where} of {dataset}: inputs have shape {tuple(x.shape)} (examples of shape "
            f"{tuple(x.shape[1:])}) but the model takes examples of shape {expected}."
        )
    if np.issubdtype(x.dtype, np.floating):
        bad = ~np.isfinite(x)
        if bad.any():
            raise DataError(
                f"{where} of {dataset}: {int(bad.sum())} input values are NaN or Inf "
                f"(first in example {_first(bad)}); clean the data or drop those examples."
            )


def _check_labels(y: np.ndarray, x: np.ndarray, spec: DatasetSpec, where: str) -> None:
    dataset = spec.name
    if spec.task == "language_model" and tuple(y.shape) != tuple(x.shape):
        raise DataError(
            f"{where} of {dataset}: targets have shape {tuple(y.shape)}; a language model "
            f"needs one target per input token, shape {tuple(x.shape)}."
        )
    if spec.task == "classification" and not (y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1)):
        raise DataError(
            f"{where} of {dataset}: labels have shape {tuple(y.shape)}; expected one class id "
            f"per example, shape ({x.shape[0]},)."
        )
    if np.issubdtype(y.dtype, np.floating):
        fractional = ~np.isfinite(y) | (np.round(y) != y)
        if fractional.any():
            raise DataError(
                f"{where} of {dataset}: label {y.flat[np.argmax(fractional.ravel())]!r} is not "
                f"a class id; labels must be integers in [0, {spec.num_classes})."
            )
    outside = (y < 0) | (y >= spec.num_classes)
    if outside.any():
        value = y.flat[np.argmax(outside.ravel())]
        raise DataError(
            f"{where} of {dataset}: label {value.item()!r} (example {_first(outside)}) is "
            f"outside [0, {spec.num_classes}): {dataset} has {spec.num_classes} classes."
        )


def check_batch(batch: Any, *, spec: DatasetSpec, input_shape: tuple, where: str) -> None:
    """Raise :class:`DataError` if ``batch`` cannot train the model described by ``spec``.

    Args:
        batch: ``(x, y)`` or ``(x, y, sample_weight)``, tensors or arrays.
        spec: The dataset's spec: task, number of classes, name for the message.
        input_shape: The per-example shape the model takes (see :func:`model_input_shape`).
        where: What the message calls the batch, e.g. ``"train batch 0"``.

    Raises:
        DataError: If the inputs have the wrong shape or hold NaN / Inf, inputs and labels
            differ in number, labels are not class ids in ``[0, num_classes)`` (or not one
            target per token for a language model), or sample weights are negative or
            not finite.
    """
    x, y, weight = (None if t is None else np.asarray(t) for t in unpack_batch(batch))
    _check_inputs(x, tuple(input_shape), where, spec.name)
    if y.shape[:1] != x.shape[:1]:
        raise DataError(f"{where} of {spec.name}: {x.shape[0]} inputs but {y.shape[0]} labels.")
    if spec.task in _LABELLED:
        _check_labels(y, x, spec, where)
    if weight is not None and not (np.isfinite(weight).all() and (weight >= 0).all()):
        raise DataError(f"{where} of {spec.name}: sample weights must be finite and >= 0.")


def check_first_batches(
    ordered_split: Callable[[str], tf.data.Dataset],
    *,
    spec: DatasetSpec,
    input_shape: tuple,
    num_batches: int = 1,
    splits: Sequence[str] = ("train", "eval"),
) -> None:
    """Check the first ``num_batches`` batches of each split; ``ordered_split(split)`` gives them.

    Ordered (unshuffled) batches are cheap to get: no shuffle buffer to fill.

    Args:
        ordered_split: ``split -> dataset`` of unshuffled batches.
        spec: The dataset's spec (see :func:`check_batch`).
        input_shape: The per-example shape the model takes.
        num_batches: How many batches of each split to check.
        splits: The splits to check.

    Raises:
        DataError: At the first batch :func:`check_batch` refuses.
    """
    for split in splits:
        dataset = ordered_split(split)
        for index, batch in enumerate(dataset.take(num_batches)):
            check_batch(batch, spec=spec, input_shape=input_shape, where=f"{split} batch {index}")
