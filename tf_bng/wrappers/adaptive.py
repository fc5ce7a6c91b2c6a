"""AdaptiveNormalizedOptimizer: NGadap, the paper's best SGD variant (LARS's trust ratio)."""

from __future__ import annotations

import keras

from tf_bng.wrappers.base import BlockTransformOptimizer

__all__ = ["AdaptiveNormalizedOptimizer"]


@keras.saving.register_keras_serializable(package="tf_bng")
class AdaptiveNormalizedOptimizer(BlockTransformOptimizer):
    """Scale each block's gradient to ``alpha`` times the block's weight norm.

    ``g_i = alpha * ||x_i|| / (||G_i|| + epsilon) * G_i`` (NGadap of the paper;
    alpha = 0.02 was its best with SGD). A block whose gradient or weights
    have norm zero (a freshly zero-initialized bias) keeps its raw gradient.

    With SGD momentum, per-layer blocks and biases / normalization parameters
    excluded, this is LARS (You et al., 2017)::

        lars = tf_bng.AdaptiveNormalizedOptimizer(
            keras.optimizers.SGD(learning_rate=0.1, momentum=0.9),
            alpha=0.001,  # LARS's trust coefficient
            blocks="layer",
            exclude=("bias", "batch_norm", "gamma", "beta"),
        )

    LARS adds weight decay to the gradient before taking the ratio; Keras's
    ``weight_decay`` on the inner optimizer is decoupled (applied outside it).

    Args:
        optimizer: Any Keras 3 optimizer instance; it owns the learning rate, momentum,
            weight decay, EMA...
        alpha: A block's update norm relative to its weight norm (default 0.02).
        normalization: The norm of gradients and weights, from
            ``tf_bng.available_norms()`` (default ``"l2"``).
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

    transform_name = "ng_adap"
    transform_options = {"alpha": "alpha"}

    def __init__(self, optimizer, alpha: float = 0.02, normalization: str = "l2", **kwargs):
        super().__init__(optimizer, normalization, alpha=alpha, **kwargs)

    @property
    def alpha(self) -> float:
        """NGadap's ``alpha``: the update norm of a block relative to its weight norm."""
        return self.transform_config.alpha
