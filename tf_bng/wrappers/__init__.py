"""Keras 3 optimizer wrappers for ``model.compile`` / ``model.fit`` users."""

from tf_bng.wrappers.adaptive import AdaptiveNormalizedOptimizer
from tf_bng.wrappers.base import DEFAULT_BLOCKS, BlockTransformOptimizer
from tf_bng.wrappers.clipped import ClippedOptimizer
from tf_bng.wrappers.normalized import NormalizedOptimizer
from tf_bng.wrappers.update_trust_ratio import UpdateTrustRatioOptimizer

__all__ = [
    "AdaptiveNormalizedOptimizer",
    "BlockTransformOptimizer",
    "ClippedOptimizer",
    "DEFAULT_BLOCKS",
    "NormalizedOptimizer",
    "UpdateTrustRatioOptimizer",
]
