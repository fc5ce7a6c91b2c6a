"""How a block's factor follows from its norm: normalize, trust ratio, clip.

Each rule gives its factor twice, from the same formula: :meth:`BlockScale.scale`
from ``d = n + eps`` (the cheap path, a trusted norm), and
:meth:`BlockScale.rescaled` from the rescaled norm ``n = r / p`` (``p`` a power
of two), as ``c = scale / p`` (the exact path: ``g * scale`` is computed as
``(g * p) * c``, both factors representable). The driver in
:mod:`tf_bng.gradient_transforms.scale_blocks` does the rest, for every rule.
"""

from __future__ import annotations

import abc

import tensorflow as tf

__all__ = ["BlockScale", "Normalize", "TrustRatio", "Clip", "Unchanged"]


def check_positive(name: str, value: float) -> float:
    """``value`` when it is a number > 0, else a ValueError naming ``name``."""
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}.")
    return float(value)


class BlockScale(abc.ABC):
    """A block's factor from its gradient norm ``n`` (and the weights' norm ``m``).

    Args:
        epsilon: Added to the gradient norm (>= 0); 0 normalizes whatever the norm.
        max_scale: Upper bound on the factor (> 0), or None.

    Raises:
        ValueError: ``epsilon`` < 0 or ``max_scale`` <= 0.
    """

    uses_weights = False  # whether the factor needs the weights' norm m
    changes_gradients = True

    def __init__(self, *, epsilon: float = 0.0, max_scale: float | None = None):
        if not epsilon >= 0:
            raise ValueError(f"epsilon must be >= 0, got {epsilon!r}.")
        self.epsilon = float(epsilon)
        if max_scale is not None and not max_scale > 0:
            raise ValueError(f"max_scale must be > 0 or None, got {max_scale!r}.")
        self.max_scale = None if max_scale is None else float(max_scale)

    @abc.abstractmethod
    def scale(self, d: tf.Tensor, m: tf.Tensor | None) -> tf.Tensor:
        """The factor from ``d = n + epsilon > 0`` (scalars or vectors), before ``max_scale``.

        Args:
            d: The block's gradient norm plus ``epsilon`` (> 0), a scalar or one per block.
            m: The weights' norm, same shape as ``d``, when :attr:`uses_weights`; else None.

        Returns:
            The factor, same shape and dtype as ``d``.
        """

    @abc.abstractmethod
    def rescaled(
        self, d: tf.Tensor, p: tf.Tensor, m: tf.Tensor | None
    ) -> tuple[tf.Tensor | None, tf.Tensor]:
        """``(changes, c)`` from ``d = r + epsilon * p`` with ``c = scale / p``.

        ``changes`` (None: always) says whether the block is multiplied at all
        beyond the driver's own test (a zero norm leaves a block unchanged).

        Args:
            d: ``r + epsilon * p``, with ``r`` the rescaled gradient norm ``n * p``.
            p: The power of two the norm was rescaled by (exact), same shape as ``d``.
            m: The weights' norm when :attr:`uses_weights`; else None.

        Returns:
            ``(changes, c)``: a bool tensor or None, and the factor to multiply ``g * p`` by.
        """


class Normalize(BlockScale):
    """NG: ``1 / (n + epsilon)``, the block's gradient scaled to unit norm.

    Args:
        epsilon: Added to the gradient norm (>= 0); 0 normalizes whatever the norm.
        max_scale: Upper bound on the factor (> 0), or None.

    Raises:
        ValueError: ``epsilon`` < 0 or ``max_scale`` <= 0.
    """

    def scale(self, d, m):
        return 1.0 / d

    def rescaled(self, d, p, m):
        return None, tf.ones([], d.dtype) / d


class TrustRatio(BlockScale):
    """NGadap / LARS: ``alpha * m / (n + epsilon)``; a zero weight norm leaves the block unchanged.

    Args:
        alpha: The trust coefficient (> 0; LARS's eta).
        epsilon: As :class:`BlockScale`.
        max_scale: As :class:`BlockScale` (LARS's trust-ratio clipping).

    Raises:
        ValueError: ``alpha`` <= 0, or as :class:`BlockScale`.
    """

    uses_weights = True

    def __init__(self, *, alpha: float, epsilon: float = 0.0, max_scale: float | None = None):
        super().__init__(epsilon=epsilon, max_scale=max_scale)
        self.alpha = check_positive("alpha", alpha)

    def scale(self, d, m):
        return tf.cast(self.alpha, d.dtype) * m / d

    def rescaled(self, d, p, m):
        return m > 0, tf.cast(self.alpha, d.dtype) * m / d


class Clip(BlockScale):
    """Clipping: ``min(1, threshold / (n + epsilon))``.

    Args:
        threshold: The norm above which a block is scaled down (> 0).
        epsilon: As :class:`BlockScale`.
        max_scale: As :class:`BlockScale`.

    Raises:
        ValueError: ``threshold`` <= 0, or as :class:`BlockScale`.
    """

    def __init__(self, *, threshold: float, epsilon: float = 0.0, max_scale: float | None = None):
        super().__init__(epsilon=epsilon, max_scale=max_scale)
        self.threshold = check_positive("threshold", threshold)

    def scale(self, d, m):
        return tf.minimum(tf.ones([], d.dtype), tf.cast(self.threshold, d.dtype) / d)

    def rescaled(self, d, p, m):
        # scale < 1 iff threshold < n + eps, i.e. threshold * p < r + eps * p
        threshold = tf.cast(self.threshold, d.dtype)
        return threshold * p < d, threshold / d


class Unchanged(BlockScale):
    """Factor 1: the block's norm is measured and reported, its gradient left as it is.

    Args:
        epsilon: As :class:`BlockScale` (checked, but the factor stays 1).
        max_scale: As :class:`BlockScale` (checked, but the factor stays 1).

    Raises:
        ValueError: ``epsilon`` < 0 or ``max_scale`` <= 0.
    """

    changes_gradients = False

    def scale(self, d, m):
        return tf.ones_like(d)

    def rescaled(self, d, p, m):
        return tf.constant(False), tf.ones([], d.dtype)
