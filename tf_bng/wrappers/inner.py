"""What every tf_bng optimizer wrapper shares: it owns none of the base settings.

A wrapper holds another Keras 3 optimizer (``inner_optimizer``), which owns the
learning rate, momentum, weight decay and step counter; the wrapper's
``learning_rate`` and ``iterations`` are the inner ones, as in
``keras.optimizers.LossScaleOptimizer``, so schedules and learning-rate
callbacks act on the optimizer that steps.
"""

from __future__ import annotations

from typing import Any

import keras

__all__ = ["InnerOptimizerProxy", "check_keras_optimizer", "reject_unowned_kwargs"]

# Base-optimizer settings a wrapper does not own: they belong to the inner
# optimizer, which is the one that steps (or they would act twice / per replica).
_INNER_ONLY_ARGS = (
    "learning_rate",
    "weight_decay",
    "clipnorm",
    "clipvalue",
    "global_clipnorm",
    "use_ema",
    "ema_momentum",
    "ema_overwrite_frequency",
    "loss_scale_factor",
    "gradient_accumulation_steps",
)


def reject_unowned_kwargs(owner: str, kwargs: dict[str, Any]) -> None:
    """Raise a clear error for base-optimizer arguments passed to a wrapper."""
    for name in _INNER_ONLY_ARGS:
        if name in kwargs:
            raise ValueError(
                f"{owner} does not accept `{name}`: it wraps another optimizer, and `{name}` "
                f"belongs to that one. Set it on the inner optimizer instead, e.g. "
                f"{owner}(keras.optimizers.Adam(..., {name}=...)). "
                + (
                    "The wrapper's `learning_rate` property reads and sets the inner one."
                    if name == "learning_rate"
                    else ""
                )
            )
    if kwargs:
        raise ValueError(f"{owner} got unexpected arguments: {', '.join(sorted(kwargs))}.")


def check_keras_optimizer(owner: str, optimizer: Any) -> None:
    """A TypeError unless ``optimizer`` is a Keras 3 optimizer instance."""
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        raise TypeError(
            f"{owner} wraps a Keras 3 optimizer instance (e.g. keras.optimizers.SGD(0.1)); "
            f"got {type(optimizer).__name__}."
        )


class InnerOptimizerProxy(keras.optimizers.Optimizer):
    """A Keras optimizer whose learning rate and step counter are ``self.inner_optimizer``'s."""

    inner_optimizer: keras.optimizers.Optimizer

    @property
    def learning_rate(self):
        """The inner optimizer's learning rate (read and set through the wrapper)."""
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate):
        self.inner_optimizer.learning_rate = learning_rate

    @property
    def iterations(self):
        """The inner optimizer's step counter."""
        return self.inner_optimizer.iterations

    @property
    def variables(self):
        """The wrapper's own variables, then the inner optimizer's (the saved order)."""
        return list(self._variables) + self.inner_optimizer.variables

    def finalize_variable_values(self, var_list):
        self.inner_optimizer.finalize_variable_values(var_list)
