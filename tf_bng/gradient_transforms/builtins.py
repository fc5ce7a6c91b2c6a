"""The built-in transforms, by name: what a user composes with :func:`chain`."""

from __future__ import annotations

from tf_bng import blocks as blocks_lib
from tf_bng.gradient_transforms.scale_blocks import ScaleBlocks
from tf_bng.gradient_transforms.scales import Clip, Normalize, TrustRatio, Unchanged
from tf_bng.gradient_transforms.weight_decay import AddDecayedWeights

__all__ = [
    "normalize",
    "trust_ratio",
    "clip_by_block_norm",
    "clip_by_global_norm",
    "add_decayed_weights",
    "measure_norms",
]


def normalize(
    *,
    norm: str = "l2",
    blocks: blocks_lib.BlockSpec = "layer",
    epsilon: float = 0.0,
    max_scale: float | None = None,
) -> ScaleBlocks:
    """NG: each block's gradient divided by its norm (plus ``epsilon``).

    Args:
        norm: A registered norm (:func:`tf_bng.available_norms`).
        blocks: ``"layer"``, ``"variable"``, ``"global"`` or a callable variable -> key.
        epsilon: Added to the norm (>= 0); a positive value caps the gain at ``1/epsilon``.
        max_scale: Upper bound on the factor, or None.

    Returns:
        The transform.

    Raises:
        ValueError: an unknown norm or block mode, or an out-of-range number.
    """
    return ScaleBlocks(Normalize(epsilon=epsilon, max_scale=max_scale), norm=norm, blocks=blocks)


def trust_ratio(
    *,
    alpha: float,
    norm: str = "l2",
    blocks: blocks_lib.BlockSpec = "layer",
    epsilon: float = 0.0,
    max_scale: float | None = None,
) -> ScaleBlocks:
    """NGadap / LARS: each block scaled by ``alpha * ||w|| / (||g|| + epsilon)``.

    Args:
        alpha: The trust coefficient (> 0; the paper's NGadap uses 0.02, LARS's eta 0.001).
        norm: A registered norm, of both the gradient and the weights.
        blocks: As :func:`normalize` (LARS: ``"variable"``).
        epsilon: Added to the gradient norm (>= 0).
        max_scale: Upper bound on the trust ratio, or None.

    Returns:
        The transform.

    Raises:
        ValueError: an unknown norm or block mode, or an out-of-range number.
    """
    rule = TrustRatio(alpha=alpha, epsilon=epsilon, max_scale=max_scale)
    return ScaleBlocks(rule, norm=norm, blocks=blocks)


def clip_by_block_norm(
    *,
    threshold: float,
    norm: str = "l2",
    blocks: blocks_lib.BlockSpec = "layer",
    epsilon: float = 0.0,
) -> ScaleBlocks:
    """Each block scaled by ``min(1, threshold / (||g|| + epsilon))``.

    Args:
        threshold: The norm above which a block is scaled down (> 0).
        norm: A registered norm.
        blocks: As :func:`normalize`.
        epsilon: Added to the norm (>= 0).

    Returns:
        The transform.

    Raises:
        ValueError: an unknown norm or block mode, or an out-of-range number.
    """
    return ScaleBlocks(Clip(threshold=threshold, epsilon=epsilon), norm=norm, blocks=blocks)


def clip_by_global_norm(*, threshold: float, norm: str = "l2", epsilon: float = 0.0) -> ScaleBlocks:
    """All gradients as one block, scaled by ``min(1, threshold / (||g|| + epsilon))``.

    Args:
        threshold: The global norm above which every gradient is scaled down (> 0).
        norm: A registered norm.
        epsilon: Added to the norm (>= 0).

    Returns:
        The transform (one block, named ``"global"``).

    Raises:
        ValueError: an unknown norm or an out-of-range number.
    """
    return clip_by_block_norm(threshold=threshold, norm=norm, blocks="global", epsilon=epsilon)


def add_decayed_weights(weight_decay: float) -> AddDecayedWeights:
    """Coupled weight decay, ``g + weight_decay * w`` (see :class:`AddDecayedWeights`).

    Args:
        weight_decay: The coefficient (> 0).

    Returns:
        The transform.

    Raises:
        ValueError: ``weight_decay`` <= 0.
    """
    return AddDecayedWeights(weight_decay)


def measure_norms(*, norm: str = "l2", blocks: blocks_lib.BlockSpec = "layer") -> ScaleBlocks:
    """Gradients unchanged; every block's norm reported (the ``"none"`` transform).

    Args:
        norm: A registered norm.
        blocks: As :func:`normalize`.

    Returns:
        The transform.

    Raises:
        ValueError: an unknown norm or block mode.
    """
    return ScaleBlocks(Unchanged(), norm=norm, blocks=blocks)
