"""NormalizedOptimizer: the inner optimizer steps on block-normalized gradients (NG)."""

from __future__ import annotations

import keras

from tf_bng.wrappers.base import BlockTransformOptimizer

__all__ = ["NormalizedOptimizer"]


@keras.saving.register_keras_serializable(package="tf_bng")
class NormalizedOptimizer(BlockTransformOptimizer):
    """Divide each block's gradient by its norm, then let ``optimizer`` step.

    ``g_i = G_i / (||G_i|| + epsilon)``; a block whose gradient is exactly zero
    is left unchanged. Each block's step length is then set by the inner
    optimizer's learning rate alone, whatever the scale of the gradient.

    Example::

        model.compile(
            optimizer=tf_bng.NormalizedOptimizer(keras.optimizers.SGD(0.1, momentum=0.9), "l2"),
            loss="sparse_categorical_crossentropy",
        )
        model.fit(x, y)

    Use ``blocks="variable"`` for the keras seed's one-block-per-tensor behaviour.
    See :class:`BlockTransformOptimizer` for the details of each argument.

    Args:
        optimizer: Any Keras 3 optimizer instance; it owns the learning rate, momentum,
            weight decay, EMA...
        normalization: A norm name from ``tf_bng.available_norms()`` (default ``"l2"``).
        blocks: ``"layer"`` (default, the paper: the variables of one layer), ``"variable"``
            (the keras seed: one block per tensor), ``"global"`` or a callable
            ``variable -> key`` (callables cannot be saved).
        exclude: Regexes searched in ``variable.path``; matching variables keep their raw
            gradient.
        epsilon: Added to the norm before dividing (default 0; > 0 caps the gain at
            1/epsilon).
        max_scale: Cap on the factor a block is multiplied by (None: no cap).
        groups: ``[(selector, overrides), ...]`` parameter groups (see
            :class:`tf_bng.TransformConfig`).
        accumulation_steps: k > 1 applies one update from the mean gradient of k
            batches, every k-th batch (one device only).
        skip_nonfinite: True (default): an update whose gradient holds NaN or Inf is
            skipped (zeroed under a multi-replica strategy) and counted in
            ``bad_steps``; False: Keras's behaviour.
        name: The optimizer's name.

    Raises:
        TypeError: If ``optimizer`` is not a Keras 3 optimizer instance.
        ValueError: If an option is invalid (an unknown norm or block mode,
            ``accumulation_steps`` below 1), ``optimizer`` scales the loss or accumulates
            gradients itself, or a base-optimizer argument that belongs to ``optimizer``
            (``learning_rate``, ``weight_decay``, ``clipnorm``...) is passed.
    """

    transform_name = "ng"
