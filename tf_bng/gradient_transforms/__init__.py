"""Composable gradient transforms: small pieces with one protocol, and combinators.

Every transform takes ``(grads, variables)`` and returns a
:class:`TransformResult` (new gradients, per-block norms and factors, a
finiteness flag). The scaling ones share one driver that is exact over the
whole float range. ``tf_bng.TransformConfig`` and the strings ``"ng"``,
``"ng_adap"``, ``"clip"`` ... build these for configs and wrappers.

Example, NG on the body, NGadap on the head, coupled decay everywhere::

    from tf_bng import gradient_transforms as gt, selectors
    transform = gt.chain(
        gt.add_decayed_weights(1e-4),
        gt.route([(selectors.path("head"), gt.trust_ratio(alpha=0.02))],
                 default=gt.normalize()),
    )
    new_grads = transform.apply(grads, model.trainable_variables).grads
"""

from tf_bng.gradient_transforms.builtins import (
    add_decayed_weights,
    clip_by_block_norm,
    clip_by_global_norm,
    measure_norms,
    normalize,
    trust_ratio,
)
from tf_bng.gradient_transforms.combinators import Chain, Route, chain, masked, route
from tf_bng.gradient_transforms.lars import lars
from tf_bng.gradient_transforms.numerics import all_finite, scale_gradient
from tf_bng.gradient_transforms.protocol import GradientTransform, TransformResult
from tf_bng.gradient_transforms.scale_blocks import ScaleBlocks
from tf_bng.gradient_transforms.scales import BlockScale, Clip, Normalize, TrustRatio, Unchanged
from tf_bng.gradient_transforms.weight_decay import AddDecayedWeights

__all__ = [
    "GradientTransform",
    "TransformResult",
    "normalize",
    "trust_ratio",
    "clip_by_block_norm",
    "clip_by_global_norm",
    "add_decayed_weights",
    "measure_norms",
    "chain",
    "route",
    "masked",
    "lars",
    "Chain",
    "Route",
    "ScaleBlocks",
    "AddDecayedWeights",
    "BlockScale",
    "Normalize",
    "TrustRatio",
    "Clip",
    "Unchanged",
    "scale_gradient",
    "all_finite",
]
