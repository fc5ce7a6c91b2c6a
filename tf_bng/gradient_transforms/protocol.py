"""The one protocol every gradient transform follows.

A transform takes the gradients and the variables they belong to (two lists
of the same length) and returns new gradients plus what it measured, per
block: the gradient norm before it acted and the factor it applied. A
``None`` gradient means "no gradient, or not this transform's": it stays
``None`` and joins no block. That is how combinators route a subset of the
variables to a transform while blocks are still formed on the full list (so
two routes never change which variables share a block).
"""

import abc
from collections.abc import Sequence
from typing import Any, NamedTuple

import tensorflow as tf

from tf_bng.blocks import Partition

__all__ = ["GradientTransform", "TransformResult"]


class TransformResult(NamedTuple):
    """What a transform returns.

    Attributes:
        grads: The new gradients, one per variable (``None`` where the input was ``None``).
        norms: Per reported block (in :meth:`GradientTransform.layout` order), the gradient
            norm before the transform, float32.
        scales: Per reported block, the factor the block was multiplied by, float32.
        finite: Scalar bool: every gradient the transform received was finite, decided from
            what the norms computed anyway.
    """

    grads: list
    norms: tf.Tensor
    scales: tf.Tensor
    finite: tf.Tensor


class GradientTransform(abc.ABC):
    """Gradients and variables in, gradients out, plus per-block norms and scales.

    Subclasses implement :meth:`layout` (which blocks they report, decided in
    Python at trace time) and :meth:`apply`. They hold no TensorFlow state, so
    one instance serves any number of steps, replicas and models.
    """

    @abc.abstractmethod
    def layout(self, variables: Sequence[Any], present: Sequence[bool]) -> Partition:
        """The blocks this transform reports, for these variables.

        Args:
            variables: Every variable of the step, in order.
            present: Per variable, whether it has a gradient this transform receives.

        Returns:
            A :class:`~tf_bng.blocks.Partition`: block names and index tuples, in the order of
            :attr:`TransformResult.norms`; ``excluded`` lists present variables it reports no
            block for.
        """

    @abc.abstractmethod
    def apply(self, grads: Sequence[Any], variables: Sequence[Any]) -> TransformResult:
        """The new gradients with every reported block's norm and scale.

        Args:
            grads: One gradient (tensor, ``tf.IndexedSlices`` or None) per variable.
            variables: The variables, in the same order.

        Returns:
            A :class:`TransformResult`.
        """

    @property
    def xla_compatible(self) -> bool:
        """Whether the transform uses only ops XLA compiles (False for user-registered norms)."""
        return True


def present_mask(grads: Sequence[Any]) -> tuple[bool, ...]:
    """Which gradients are not None, as the key of a layout."""
    return tuple(g is not None for g in grads)
