"""A trust ratio on the inner optimizer's update, not on the gradient.

LAMB and Model Garden's ``LARS(classic_momentum=False)`` scale each variable's
*update* (Adam's direction, the momentum buffer) so that its norm is
``alpha * lr * ||w||``. Keras 3 optimizers compute and assign the update inside
``update_step``, with no public hook that returns it, so this wrapper takes the
one route that needs no private Keras internals: read the weights ``w``, let the
inner optimizer step, read its step ``delta``, put the weights back and assign
``w + lr * T(delta / lr)``, where ``T`` is :func:`tf_bng.gradient_transforms.trust_ratio`
measured against ``w`` (the exact-over-the-float-range driver of every transform).
It costs one copy of the weights and two more assignments a step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf
from keras.saving import deserialize_keras_object, serialize_keras_object

from tf_bng.gradient_transforms.builtins import trust_ratio
from tf_bng.gradient_transforms.combinators import masked
from tf_bng.gradient_transforms.lars import unless_path
from tf_bng.wrappers.inner import InnerOptimizerProxy, check_keras_optimizer, reject_unowned_kwargs

__all__ = ["UpdateTrustRatioOptimizer"]


def _at_least_float32(t: tf.Tensor) -> tf.Tensor:
    return tf.cast(t, tf.float32) if t.dtype in (tf.float16, tf.bfloat16) else t


def _tf_variable(variable: Any) -> tf.Variable:
    return variable.value if isinstance(variable, keras.Variable) else variable


def assign_everywhere(variables: Sequence[Any], values: Sequence[tf.Tensor]) -> None:
    """``variables[i].assign(values[i])`` on every replica, from replica or cross-replica code.

    Keras model variables are created with ``aggregation="none"``, so under a
    multi-replica strategy they are assigned in cross-replica context, as Keras's
    own optimizers do (``merge_call`` and ``extended.update``); the values are
    identical on every replica here, so each copy receives its own replica's value.
    """
    targets = [_tf_variable(v) for v in variables]

    def update(strategy, values):
        for target, value in zip(targets, values):
            strategy.extended.update(target, lambda t, x: t.assign(x), args=(value,), group=False)

    context = tf.distribute.get_replica_context()
    if context is None:
        update(tf.distribute.get_strategy(), list(values))
    else:
        context.merge_call(update, args=(list(values),))


@keras.saving.register_keras_serializable(package="tf_bng")
class UpdateTrustRatioOptimizer(InnerOptimizerProxy):
    """Let ``optimizer`` step, then rescale each block's step to norm ``alpha * lr * ||w||``.

    With ``keras.optimizers.Adam`` inside this is LAMB's layer-wise adaptation
    (Keras's ``weight_decay=`` on the Adam is decoupled and lands inside the
    update, as LAMB's ``r + lambda * w``); with ``keras.optimizers.SGD(lr,
    momentum=m)`` inside and the weight decay added to the gradient (a
    ``TrainStep`` transform :func:`~tf_bng.gradient_transforms.add_decayed_weights`)
    it is Model Garden's ``LARS(classic_momentum=False, eeta=alpha)``. A block
    whose weights or step is zero keeps the inner optimizer's step (ratio 1, as
    both define it). Variable constraints are applied to the rescaled weights.

    Example::

        model.compile(
            optimizer=tf_bng.wrappers.UpdateTrustRatioOptimizer(keras.optimizers.Adam(1e-3)),
            loss="sparse_categorical_crossentropy",
        )

    Args:
        optimizer: Any Keras 3 optimizer instance without EMA (the EMA would track the
            weights before the rescale); it owns the learning rate, momentum and decay.
        alpha: The trust coefficient (> 0): LAMB 1.0, Model Garden LARS's ``eeta`` 0.001.
        norm: A registered norm (:func:`tf_bng.available_norms`) of the step and the weights.
        blocks: ``"variable"`` (default, LAMB and LARS), ``"layer"``, ``"global"`` or a
            callable ``variable -> key`` (callables cannot be saved).
        epsilon: Added to the step's norm (>= 0).
        max_scale: Upper bound on the ratio (None: no bound).
        exclude: Regexes searched in ``variable.path``: those variables keep the inner
            optimizer's step (Model Garden's ``exclude_from_layer_adaptation``).
        name: The optimizer's name.

    Raises:
        TypeError: ``optimizer`` is not a Keras 3 optimizer instance.
        ValueError: ``optimizer`` uses EMA, an out-of-range number, an unknown norm or
            block mode, or a base-optimizer argument (``learning_rate``, ``weight_decay``...)
            that belongs to ``optimizer``.
    """

    def __init__(
        self,
        optimizer: keras.optimizers.Optimizer,
        *,
        alpha: float = 1.0,
        norm: str = "l2",
        blocks: Any = "variable",
        epsilon: float = 0.0,
        max_scale: float | None = None,
        exclude: Sequence[str] = (),
        name: str | None = None,
        **kwargs,
    ):
        owner = type(self).__name__
        reject_unowned_kwargs(owner, kwargs)
        check_keras_optimizer(owner, optimizer)
        if optimizer.use_ema:
            raise ValueError(
                f"{owner} cannot wrap an optimizer with use_ema=True: its moving average would "
                "follow the weights before the trust ratio rescales the step."
            )
        exclude = (exclude,) if isinstance(exclude, str) else tuple(exclude)
        ratio = trust_ratio(
            alpha=alpha, norm=norm, blocks=blocks, epsilon=epsilon, max_scale=max_scale
        )
        settings = {
            "alpha": float(alpha),
            "norm": norm,
            "blocks": blocks,
            "epsilon": float(epsilon),
            "max_scale": None if max_scale is None else float(max_scale),
            "exclude": list(exclude),
        }
        super().__init__(learning_rate=0.0, name=name)
        self.inner_optimizer = optimizer
        self._ratio = masked(unless_path(exclude), ratio) if exclude else ratio
        self._settings = settings

    def build(self, variables):
        """Builds the inner optimizer and the wrapper for ``variables`` (only once)."""
        if self.built:
            return
        self.inner_optimizer.build(variables)
        super().build(variables)

    def apply(self, grads, trainable_variables=None):
        variables = (
            list(self._trainable_variables)
            if trainable_variables is None
            else list(trainable_variables)
        )
        grads = list(grads)
        if not grads:
            return
        if not self.built:
            self.build(variables)
        # The rate of this step: read before the inner apply advances `iterations`.
        lr = tf.convert_to_tensor(self.inner_optimizer.learning_rate, tf.float32)
        lr = tf.where(lr > 0, lr, tf.ones_like(lr))  # lr 0: delta 0, left as it is
        stepped = [
            i
            for i, (g, v) in enumerate(zip(grads, variables))
            if g is not None and not self._overwrite_variable_with_gradient(v)
        ]
        before = [tf.convert_to_tensor(variables[i]) for i in stepped]
        self.inner_optimizer.apply(grads, variables)
        deltas = [tf.convert_to_tensor(variables[i]) - b for i, b in zip(stepped, before)]
        moved = [variables[i] for i in stepped]
        assign_everywhere(moved, before)  # the ratio is measured against the old weights
        units = [None] * len(variables)
        for i, delta in zip(stepped, deltas):
            # float32 at least: a float16 lr below 6e-8 is 0, and delta / lr may pass 65504.
            units[i] = _at_least_float32(delta) / tf.cast(lr, _at_least_float32(delta).dtype)
        scaled = self._ratio.apply(units, variables).grads
        after = []
        for i, b in zip(stepped, before):
            step = scaled[i] * tf.cast(lr, scaled[i].dtype)
            value = b + tf.cast(step, b.dtype)
            constraint = variables[i].constraint
            after.append(value if constraint is None else constraint(value))
        assign_everywhere(moved, after)

    def get_config(self) -> dict[str, Any]:
        # Not super().get_config(): the base settings belong to the inner optimizer.
        if callable(self._settings["blocks"]):
            raise ValueError(
                f"{type(self).__name__} with a callable `blocks` cannot be serialized; use "
                "'variable', 'layer' or 'global' to save the model."
            )
        return {
            "name": self.name,
            "optimizer": serialize_keras_object(self.inner_optimizer),
            **self._settings,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects=None):
        config = dict(config)
        inner = deserialize_keras_object(config.pop("optimizer"), custom_objects=custom_objects)
        return cls(inner, **config)
