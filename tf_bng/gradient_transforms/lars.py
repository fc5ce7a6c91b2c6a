"""LARS as TensorFlow Model Garden and optax define it, by composition.

Model Garden's ``LARS`` (``official/modeling/optimization/lars.py``, the default
``classic_momentum=True``) and optax's ``lars`` add the weight decay to the
gradient, then multiply each variable's gradient by the trust ratio
``eta * ||w|| / ||g + wd * w||`` (1 where either norm is 0), then run SGD
momentum. Here: ``chain(add_decayed_weights, trust_ratio)`` in front of any
Keras optimizer (``keras.optimizers.SGD(lr, momentum=0.9)`` for LARS).
Putting Keras's ``weight_decay=`` on the inner SGD instead decays the weights
after the update (decoupled): a different rule (BUILD_NOTES measures how far).
"""

from __future__ import annotations

from collections.abc import Sequence

from tf_bng import selectors as selectors_lib
from tf_bng.gradient_transforms.builtins import add_decayed_weights, trust_ratio
from tf_bng.gradient_transforms.combinators import chain, masked
from tf_bng.gradient_transforms.protocol import GradientTransform

__all__ = ["lars"]


def unless_path(patterns: Sequence[str]) -> selectors_lib.Selector:
    """Variables whose path matches none of ``patterns`` (Model Garden's ``re.search`` rule)."""
    if isinstance(patterns, str):
        patterns = (patterns,)
    matchers = [selectors_lib.path(p) for p in patterns]
    return selectors_lib.Predicate(lambda v: not any(m(v) for m in matchers))


def lars(
    *,
    weight_decay: float = 0.0,
    eta: float = 0.001,
    exclude_from_weight_decay: Sequence[str] = (),
    exclude_from_layer_adaptation: Sequence[str] | None = None,
) -> GradientTransform:
    """The LARS gradient transform: coupled decay, then a per-variable trust ratio.

    Feed its output to ``keras.optimizers.SGD(learning_rate, momentum=0.9)`` (or
    any Keras optimizer) through :class:`tf_bng.TrainStep` or :func:`tf_bng.transform_gradients`'s
    composable form: together they are Model Garden's ``LARS(classic_momentum=True)``.

    Args:
        weight_decay: Coupled decay coefficient (>= 0; 0 adds none).
        eta: The trust coefficient (> 0).
        exclude_from_weight_decay: Regexes searched in ``variable.path``: no decay there.
        exclude_from_layer_adaptation: Regexes: no trust ratio there; None (Model Garden's
            default) takes ``exclude_from_weight_decay``.

    Returns:
        The composed transform.

    Raises:
        ValueError: ``weight_decay`` < 0 or ``eta`` <= 0, or an invalid regex.
    """
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}.")
    if exclude_from_layer_adaptation is None:
        exclude_from_layer_adaptation = exclude_from_weight_decay
    adapt = trust_ratio(alpha=eta, blocks="variable")
    stages = []
    if weight_decay > 0:
        decay = add_decayed_weights(weight_decay)
        stages.append(masked(unless_path(exclude_from_weight_decay), decay))
    stages.append(masked(unless_path(exclude_from_layer_adaptation), adapt))
    return chain(*stages)
