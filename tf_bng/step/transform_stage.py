"""The transform stage of a train step: the global gradient in, the transformed one out.

It takes the transform in any form the step accepts (a name, a
:class:`~tf_bng.TransformConfig`, any
:class:`~tf_bng.gradient_transforms.GradientTransform`), runs it on the
all-reduced gradient, and hands back what it reports: per block, the norm
before the transform and the factor applied. Under several replicas with
``jit_compile`` the transform alone is XLA-compiled (it has no collectives,
so it compiles where the whole step cannot); a transform with a
user-registered norm, which may use ops XLA lacks, never is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf
from absl import logging

from tf_bng.gradient_transforms import GradientTransform, TransformResult, all_finite
from tf_bng.transforms import BlockTransform, TransformConfig

__all__ = ["TransformStage", "as_gradient_transform"]


def as_gradient_transform(transform: Any) -> GradientTransform:
    """The transform a step runs, from a name, a config, or a transform.

    Args:
        transform: A name of :data:`tf_bng.TRANSFORMS`, a :class:`~tf_bng.TransformConfig`,
            a :class:`~tf_bng.gradient_transforms.GradientTransform`, or None (``"none"``).

    Raises:
        TypeError: ``transform`` is none of those.
        ValueError: an unknown name (the message lists the valid ones).
    """
    if transform is None or isinstance(transform, str):
        transform = TransformConfig(transform=transform or "none")
    if isinstance(transform, TransformConfig):
        transform = BlockTransform(transform)
    if not isinstance(transform, GradientTransform):
        raise TypeError(
            "transform must be a name of tf_bng.TRANSFORMS, a TransformConfig, or a "
            f"tf_bng.gradient_transforms.GradientTransform; got {transform!r}."
        )
    return transform


class TransformStage:
    """Runs the step's transform on the global gradient and reports its blocks.

    Args:
        transform: As :func:`as_gradient_transform`.
        variables: The step's trainable variables (the blocks are formed on them).
        report_norms: When False and the transform changes nothing (``"none"``), no norms
            are computed.
        compile_alone: XLA-compile the transform on its own (the step's choice under
            several replicas); ignored, with a warning, for a transform XLA cannot take.
    """

    def __init__(
        self,
        transform: Any,
        *,
        variables: Sequence[Any],
        report_norms: bool = True,
        compile_alone: bool = False,
    ):
        self.transform = as_gradient_transform(transform)
        self.variables = list(variables)
        self.block_names = self.transform.layout(self.variables, [True] * len(variables)).names
        config = getattr(self.transform, "config", None)
        #: The transform changes no gradient (``"none"`` with no groups): its factors are all 1.
        self.measures_only = config is not None and config.transform == "none" and not config.groups
        self._skip_norms = self.measures_only and not report_norms
        self.compiled = compile_alone and self.transform.xla_compatible
        if compile_alone and not self.compiled:
            logging.warning(
                "jit_compile: a user-registered norm may use ops XLA lacks; the block "
                "transform runs uncompiled."
            )
        # Built once, for every trace of the step.
        self._compiled_apply = tf.function(
            lambda g: self.transform.apply(g, self.variables), jit_compile=True, autograph=False
        )

    def __call__(self, grads: Sequence[Any]) -> TransformResult:
        """The transformed gradients, each block's norm and factor, and whether all were finite.

        ``finite`` is the step's one finiteness decision: the transform reads it
        off the norms it computes anyway. Norms and scales are empty when none
        are computed.
        """
        if self._skip_norms:
            empty = tf.zeros([0], tf.float32)
            return TransformResult(list(grads), empty, empty, all_finite(grads))
        if self.compiled:
            return TransformResult(*self._compiled_apply(list(grads)))
        return self.transform.apply(grads, self.variables)
