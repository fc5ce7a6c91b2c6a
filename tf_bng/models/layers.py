"""Building blocks shared by the models: torch-faithful conv/BN, weight decay, logits.

The ResNets follow fb.resnet.torch (the paper's code): convolutions without
bias, He-normal initialisation over fan-out, BatchNorm with torch's momentum
0.1 (Keras 0.9) and epsilon 1e-5, and explicit symmetric zero padding before
strided convolutions (TF's "same" pads bottom/right only, which would shift
the strided grid by one pixel relative to the shortcut's subsampling).

Every builder takes ``synchronized_batch_norm``: under a tf.distribute
strategy with several replicas, Keras's BatchNorm otherwise normalizes each
replica's slice with that slice's statistics and each replica keeps moving
statistics of its own (see :func:`resolve_synchronized_batch_norm`).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers

__all__ = [
    "HE_FAN_OUT",
    "weight_decay_regularizer",
    "conv",
    "batch_norm",
    "resolve_synchronized_batch_norm",
    "logits",
    "ZeroPadShortcut",
]

HE_FAN_OUT = keras.initializers.VarianceScaling(
    scale=2.0, mode="fan_out", distribution="untruncated_normal"
)


def weight_decay_regularizer(weight_decay: float) -> keras.regularizers.Regularizer | None:
    """Coupled weight decay as in torch's SGD: gradient += weight_decay * w.

    Keras's ``L2(l)`` adds ``l * sum(w**2)``, whose gradient is ``2 l w``, hence
    ``l = weight_decay / 2``.
    """
    if not weight_decay:
        return None
    return keras.regularizers.L2(float(weight_decay) / 2.0)


def conv(
    x,
    filters: int,
    kernel_size: int,
    *,
    strides: int = 1,
    weight_decay: float = 0.0,
    name: str,
):
    """Conv2D without bias; strided ones pad ``kernel_size // 2`` on every side first
    (then use "valid"), so output pixel i is centred on input pixel ``strides * i``."""
    padding = "same"
    if strides > 1 and kernel_size // 2:
        x = layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
        padding = "valid"
    return layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=False,
        kernel_initializer=HE_FAN_OUT,
        kernel_regularizer=weight_decay_regularizer(weight_decay),
        name=name,
    )(x)


def resolve_synchronized_batch_norm(value: bool | None) -> bool:
    """Whether a model's BatchNorm layers all-reduce their batch statistics across replicas.

    Synchronized, every replica normalizes with the statistics of the whole
    global batch and updates the same moving statistics, so a mirrored run
    trains like one device on that batch and the replicas' copies of the
    moving statistics agree (unsynchronized, Keras keeps one copy per replica
    and a checkpoint saves the first). The variables are the same either way:
    checkpoints and ``.keras`` files load into both.

    Args:
        value: True or False; None means "on when the current strategy (models
            are built inside ``strategy.scope()``) has more than one replica in
            sync", read from ``tf.distribute.get_strategy()`` now.

    Returns:
        The setting to build the BatchNorm layers with.

    Raises:
        ValueError: ``value`` is not True, False or None.
    """
    if value is None:
        return tf.distribute.get_strategy().num_replicas_in_sync > 1
    if not isinstance(value, bool):
        raise ValueError(
            f"synchronized_batch_norm={value!r} is not valid; choose one of: True, False, None "
            "(None: on when the strategy has more than one replica in sync)."
        )
    return value


def batch_norm(x, *, name: str, synchronized: bool = False):
    """BatchNorm with torch's momentum and epsilon; ``synchronized``: statistics over replicas."""
    return layers.BatchNormalization(
        momentum=0.9, epsilon=1e-5, synchronized=synchronized, name=name
    )(x)


def logits(x, num_classes: int, *, name: str = "logits", **dense_kwargs):
    """The output Dense layer, kept in float32 under a mixed-precision policy."""
    return layers.Dense(num_classes, dtype="float32", name=name, **dense_kwargs)(x)


@keras.saving.register_keras_serializable(package="tf_bng")
class ZeroPadShortcut(layers.Layer):
    """He et al.'s option-A shortcut: subsample by ``strides``, zero-pad new channels."""

    def __init__(self, filters: int, strides: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.strides = int(strides)

    def call(self, x):
        x = x[:, :: self.strides, :: self.strides, :]
        extra = self.filters - x.shape[-1]
        return keras.ops.pad(x, [[0, 0], [0, 0], [0, 0], [0, extra]])

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape

        def subsampled(size):
            return None if size is None else -(-size // self.strides)

        return (batch, subsampled(height), subsampled(width), self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "strides": self.strides}
