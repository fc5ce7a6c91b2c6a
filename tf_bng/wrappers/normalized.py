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

    ``NormalizedOptimizer(optimizer, normalization="l2", *, blocks="layer",
    exclude=(), epsilon=0.0)``; see :class:`BlockTransformOptimizer` for the
    arguments. Example::

        model.compile(
            optimizer=tf_bng.NormalizedOptimizer(keras.optimizers.SGD(0.1, momentum=0.9), "l2"),
            loss="sparse_categorical_crossentropy",
        )
        model.fit(x, y)

    Use ``blocks="variable"`` for the keras seed's one-block-per-tensor behaviour.
    """

    transform_name = "ng"
