"""Backward scaling as a stage of the train step: the model rewrite, taken once, and its books.

:class:`BackwardScaling` is the explicit step: ``BackwardScaling(model)``
builds the copy of the model's graph with scale points
(:func:`tf_bng.backward_scaling.insert_scale_points`); the train step then
runs its forward pass through that copy (same variables). Because the
gradients carry exact powers of two, the stage also turns the norms and
factors the transform measured back into the true ones, and brings the
micro-batches of an accumulation window to one common factor.

It is exact only for direction-only transforms: :meth:`check` refuses the
rest, once, when the step is built (before the rewrite).
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from tf_bng import backward_scaling as scaling
from tf_bng.gradient_transforms import GradientTransform
from tf_bng.step import guard
from tf_bng.transforms import BlockTransform

__all__ = ["BackwardScaling", "checked"]

_DIRECTION_ONLY = ("ng", "ng_adap")


class BackwardScaling:
    """The model with backward scale points, and how to read the factors its gradients carry.

    Args:
        model: A built Sequential or functional model, or one holding
            :class:`~tf_bng.BackwardScale` layers placed by hand.

    Raises:
        ValueError: As :func:`tf_bng.backward_scaling.insert_scale_points`.
    """

    def __init__(self, model: keras.Model):
        self.model = model
        self.forward_model, self.points = scaling.insert_scale_points(model)
        self._block_matrix = self._variable_matrix = None
        self._first_of_block: list[int] = []

    @property
    def point_variables(self) -> set[int]:
        """``id`` of the points' own factor variables (not forward state to put back)."""
        return {id(v) for v in self.points.factors}

    def prepare(self, transform: GradientTransform) -> None:
        """Reads which scale points multiply each block and variable of ``transform``.

        Args:
            transform: The step's transform (checked by :func:`checked`).
        """
        variables = self.model.trainable_variables
        blocks = transform.layout(variables, [True] * len(variables)).blocks
        self._block_matrix = self.points.block_matrix(variables, blocks)
        self._variable_matrix = self.points.variable_matrix(variables)
        self._first_of_block = [ix[0] for ix in blocks]

    def true_reports(self, norms, scales, window=None) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """``(norms, scales, log10_norms)`` of the unscaled gradient, from the scaled one's.

        Args:
            norms: Per block, the norm the transform measured.
            scales: Per block, the factor it applied.
            window: The step's :class:`~tf_bng.step.accumulation.AccumulationWindow`, whose
                sums carry the window's common factor; None: the last backward pass's.
        """
        if window is not None:
            reference = tf.convert_to_tensor(window.reference)
            log2_factors = tf.gather(reference, self._first_of_block)
        else:
            log2_factors = self.points.log2_factors(self._block_matrix)
        norms, log10_norms = scaling.true_norms(norms, log2_factors)
        return norms, scaling.times_power_of_two(scales, log2_factors), log10_norms

    def to_window_factor(self, window) -> tf.Tensor:
        """Per variable, the exact power of two that brings this micro-batch's gradient to the
        window's common factor (the first micro-batch of a window fixes it).

        Args:
            window: The step's :class:`~tf_bng.step.accumulation.AccumulationWindow`.
        """
        own = self.points.log2_factors(self._variable_matrix)
        guard.run_if(window.count == 0, lambda: window.reference.assign(own))
        return scaling.power_of_two(tf.convert_to_tensor(window.reference) - own)


def _check_settings(transform: GradientTransform, model: keras.Model, optimizer: Any) -> None:
    """Refuses settings whose update would change under scaling; the message names them."""
    if not isinstance(transform, BlockTransform):
        raise ValueError(
            "backward_scaling needs a transform given by name or TransformConfig "
            "(ng or ng_adap), not a composed GradientTransform."
        )
    for index, rule in enumerate(transform.config.rules()):
        _check_rule(index, rule)
    if model.losses:
        raise ValueError(
            "backward_scaling cannot be used with regularization losses (model.losses, e.g. "
            "an l2 kernel regularizer / model.weight_decay): their gradient does not pass "
            "through the scaled backward signal. Use the optimizer's decoupled weight_decay "
            "instead."
        )
    if type(optimizer).__name__ == "AdaGradBNG":
        raise ValueError(
            "backward_scaling cannot be used with AdaGradBNG, whose step size uses the true "
            "gradient norm; use ng with another optimizer."
        )


def _check_rule(index: int, rule) -> None:
    where = "transform" if index == 0 else f"transform group {index}"
    if index and rule.transform == "none":
        return  # such a group is excluded: its variables keep their raw gradient
    if rule.transform not in _DIRECTION_ONLY:
        raise ValueError(
            f"backward_scaling needs a transform that uses only each block's direction "
            f"(ng, ng_adap); {where} is {rule.transform!r}, which needs true magnitudes."
        )
    if rule.max_scale is not None or rule.epsilon > 0:
        raise ValueError(
            f"backward_scaling cannot be combined with max_scale or epsilon > 0 ({where}): "
            "both compare a true gradient norm with a fixed number."
        )
    if callable(rule.blocks) or rule.blocks == "global":
        raise ValueError(
            f"backward_scaling needs blocks='layer' or 'variable' ({where}): a block "
            "spanning several layers would mix gradients carrying different factors."
        )


def checked(
    backward_scaling: bool | BackwardScaling,
    *,
    model: keras.Model,
    transform: GradientTransform,
    optimizer: Any,
) -> BackwardScaling | None:
    """The step's stage from its ``backward_scaling`` argument (True builds it), checked."""
    if backward_scaling is False or backward_scaling is None:
        return None
    if backward_scaling is not True and not isinstance(backward_scaling, BackwardScaling):
        raise TypeError(
            f"backward_scaling must be True, False or a tf_bng.step.BackwardScaling; got "
            f"{backward_scaling!r}."
        )
    if backward_scaling is not True and backward_scaling.model is not model:
        raise ValueError("backward_scaling was built for another model than the step's.")
    _check_settings(transform, model, optimizer)  # before the rewrite: its refusals come first
    stage = BackwardScaling(model) if backward_scaling is True else backward_scaling
    stage.prepare(transform)
    return stage
