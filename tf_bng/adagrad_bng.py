"""AdaGradBNG: AdaGrad on block-normalized gradients (the paper's Algorithm 2).

With ``g_i = G_i / ||G_i||`` the normalized gradient of block ``i``, the
per-coordinate accumulator is ``s = sqrt(sum_t g_t**2)`` and the step is
``x_i -= eta * ||G_i|| / (delta + s_i) * g_i = eta * G_i / (delta + s_i)``.

The update of one variable needs the norm of its whole block, which Keras's
per-variable ``update_step`` cannot see; ``apply`` therefore sums the
gradients over replicas, computes the block norms, and hands them to
``update_step`` through ``self._block_norm_of``.  All replicas compute the same
norms from the same all-reduced gradient, so whichever replica's tensors are
read inside the cross-replica update is numerically the same.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

from tf_bng import distributed
from tf_bng import norms as norms_lib
from tf_bng.transforms import BlockTransform, TransformConfig

__all__ = ["AdaGradBNG"]


@keras.saving.register_keras_serializable(package="tf_bng")
class AdaGradBNG(keras.optimizers.Optimizer):
    """AdaGrad with block-normalized gradients.

    Args:
      learning_rate: ``eta`` (paper default for AdaGrad: 0.01).
      delta: ``delta`` > 0, added to the accumulated root before dividing.
      norm: block norm name (see ``tf_bng.available_norms()``); the paper uses l2.
      blocks: ``"layer"`` (paper), ``"variable"``, ``"global"`` or a callable.
      exclude: regexes on ``variable.path``; excluded variables get plain AdaGrad.
      initial_accumulator_value: starting value of the sum of squares.
      name: the optimizer's name.
      **kwargs: Keras's base-optimizer arguments (``weight_decay``,
        ``clipnorm``, ``use_ema``, ...), but ``gradient_accumulation_steps``.

    Raises:
      ValueError: if ``delta`` is not > 0, or ``gradient_accumulation_steps`` is
        given (it would normalize each micro-batch; use
        ``tf_bng.TrainStep(accumulation_steps=k)``).
    """

    def __init__(
        self,
        learning_rate=0.01,
        delta: float = 1e-8,
        *,
        norm: str = "l2",
        blocks: str = "layer",
        exclude: Sequence[str] = (),
        initial_accumulator_value: float = 0.0,
        name: str = "adagrad_bng",
        **kwargs,
    ):
        if kwargs.get("gradient_accumulation_steps"):
            raise ValueError(
                "AdaGradBNG normalizes each block of the gradient it is given, so Keras's "
                "gradient_accumulation_steps would normalize every micro-batch instead of their "
                "mean; use tf_bng.TrainStep(accumulation_steps=k) with AdaGradBNG instead."
            )
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if not delta > 0:
            raise ValueError(f"delta must be > 0, got {delta!r}.")
        self.delta = float(delta)
        self.initial_accumulator_value = float(initial_accumulator_value)
        self._transform = BlockTransform(
            TransformConfig(transform="ng", norm=norm, blocks=blocks, exclude=tuple(exclude))
        )
        self._block_norm_of = None

    def build(self, var_list):
        """Creates one accumulator per variable, set to ``initial_accumulator_value``.

        Args:
            var_list: The variables this optimizer will update.
        """
        if self.built:
            return
        super().build(var_list)
        init = keras.initializers.Constant(self.initial_accumulator_value)
        self._accumulators = [
            self.add_variable_from_reference(v, name="accumulator", initializer=init)
            for v in var_list
        ]

    def apply(self, grads, trainable_variables=None):
        variables = list(trainable_variables) if trainable_variables is not None else None
        if variables is None:
            variables = list(self._trainable_variables)
        grads = distributed.sum_over_replicas(list(grads))
        part = self._transform.partition(variables, grads)
        norm_fn = norms_lib.get_norm(self._transform.config.norm)
        per_variable = {}
        for ix in part.blocks:
            # Kept in the gradients' precision: a float32 cast here would cap a
            # float64 model at float32 accuracy.
            n = norm_fn([grads[i] for i in ix])
            n = tf.where(n > 0, n, tf.ones_like(n))  # zero block: G = 0, no step
            for i in ix:
                per_variable[self._var_key(variables[i])] = n
        self._block_norm_of = per_variable
        try:
            super().apply(distributed.divide_for_keras_sum(grads), variables)
        finally:
            self._block_norm_of = None

    def update_step(self, gradient, variable, learning_rate):
        """Applies one AdaGradBNG update (paper Algorithm 2) to ``variable``.

        Args:
            gradient: The gradient of ``variable`` (dense or ``tf.IndexedSlices``).
            variable: The variable to update.
            learning_rate: The step size for this step.
        """
        if isinstance(gradient, tf.IndexedSlices):
            gradient = tf.convert_to_tensor(gradient)
        dtype = variable.dtype
        lr = tf.cast(learning_rate, dtype)
        norm = None
        if self._block_norm_of is not None:
            norm = self._block_norm_of.get(self._var_key(variable))
        norm = tf.ones([], dtype) if norm is None else tf.cast(norm, dtype)
        acc = self._accumulators[self._get_variable_index(variable)]
        normalized = gradient / norm
        self.assign_add(acc, tf.square(normalized))
        self.assign_sub(variable, lr * gradient / (self.delta + tf.sqrt(acc)))

    def get_config(self):
        config = super().get_config()
        cfg = self._transform.config
        if callable(cfg.blocks):
            raise ValueError("AdaGradBNG with a callable `blocks` cannot be serialized.")
        config.update(
            delta=self.delta,
            norm=cfg.norm,
            blocks=cfg.blocks,
            exclude=list(cfg.exclude),
            initial_accumulator_value=self.initial_accumulator_value,
        )
        return config
