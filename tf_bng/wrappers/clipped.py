"""ClippedOptimizer: the inner optimizer steps on block-wise clipped gradients."""

from __future__ import annotations

import keras

from tf_bng.wrappers.base import BlockTransformOptimizer

__all__ = ["ClippedOptimizer"]


@keras.saving.register_keras_serializable(package="tf_bng")
class ClippedOptimizer(BlockTransformOptimizer):
    """Clip each block's gradient by its own norm, then let ``optimizer`` step.

    ``g_i = G_i * min(1, clipnorm / (||G_i|| + epsilon))`` under the chosen
    ``normalization``; ``blocks="global"`` clips by the norm of all gradients.
    Unlike Keras's own ``clipnorm`` / ``global_clipnorm``, the norm is that of
    the gradient summed over all replicas, so a MirroredStrategy run equals
    the single-device one.

    Example::

        tf_bng.ClippedOptimizer(keras.optimizers.Adam(1e-3), "l2", clipnorm=0.5)

    Args:
        optimizer: Any Keras 3 optimizer instance; it owns the learning rate, momentum,
            weight decay, EMA...
        normalization: The norm a block is measured with, from
            ``tf_bng.available_norms()`` (default ``"l2"``).
        clipnorm: The largest block norm let through (default 1.0).
        **kwargs: The keyword-only options of :class:`BlockTransformOptimizer`
            (``blocks``, ``exclude``, ``epsilon``, ``max_scale``, ``groups``,
            ``accumulation_steps``, ``skip_nonfinite``, ``name``).

    Raises:
        TypeError: If ``optimizer`` is not a Keras 3 optimizer instance.
        ValueError: If an option is invalid (an unknown norm or block mode,
            ``accumulation_steps`` below 1), ``optimizer`` scales the loss or accumulates
            gradients itself, or a base-optimizer argument that belongs to ``optimizer``
            (``learning_rate``, ``weight_decay``, ``clipnorm``...) is passed.
    """

    transform_name = "clip"
    transform_options = {"clipnorm": "threshold"}

    def __init__(self, optimizer, normalization: str = "l2", clipnorm: float = 1.0, **kwargs):
        super().__init__(optimizer, normalization, clipnorm=clipnorm, **kwargs)

    @property
    def clip_threshold(self) -> float:
        """The largest block norm let through (the constructor's ``clipnorm``)."""
        return self.transform_config.threshold
