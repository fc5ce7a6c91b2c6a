"""Coupled weight decay: ``g + weight_decay * w``, as an L2 regularizer would add it.

This is the decay LARS (You et al., 2017; TensorFlow Model Garden's
``official/modeling/optimization/lars.py``) puts *in the gradient*, before the
trust ratio sees it. It differs from Keras's ``weight_decay=`` argument, which
decays the weights after the update (decoupled, AdamW-style).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from tf_bng import blocks as blocks_lib
from tf_bng.gradient_transforms import numerics
from tf_bng.gradient_transforms.protocol import GradientTransform, TransformResult
from tf_bng.gradient_transforms.scales import check_positive

__all__ = ["AddDecayedWeights"]


class AddDecayedWeights(GradientTransform):
    """Add ``weight_decay * w`` to every present gradient; reports no block.

    A sparse (``IndexedSlices``) gradient becomes dense: the decay touches every
    row. ``finite`` is judged on the decayed gradients (a non-finite input
    stays non-finite).

    Args:
        weight_decay: The decay coefficient (> 0).

    Raises:
        ValueError: ``weight_decay`` <= 0.
    """

    def __init__(self, weight_decay: float):
        self.weight_decay = check_positive("weight_decay", weight_decay)

    def layout(self, variables: Sequence[Any], present: Sequence[bool]) -> blocks_lib.Partition:
        kept = tuple(i for i, p in enumerate(present) if p)
        return blocks_lib.Partition(names=(), blocks=(), excluded=kept)

    def apply(self, grads: Sequence[Any], variables: Sequence[Any]) -> TransformResult:
        out = []
        with tf.name_scope("add_decayed_weights"):
            for g, v in zip(grads, variables):
                if g is None:
                    out.append(None)
                    continue
                g = tf.convert_to_tensor(g)  # densifies IndexedSlices
                decay = tf.cast(self.weight_decay, g.dtype)
                out.append(g + decay * tf.cast(tf.convert_to_tensor(v), g.dtype))
            empty = tf.zeros([0], tf.float32)
            return TransformResult(out, empty, empty, numerics.all_finite(out))
