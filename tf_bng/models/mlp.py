"""Fully connected classifiers: the paper's deep sigmoid MLP and the seed's deep MLP.

``depth`` counts the *hidden* layers (each ``Dense(width)`` + activation,
optionally followed by BatchNorm and Dropout, in the seed's order); the
output ``Dense(num_classes)`` layer comes on top. The paper's depths 6/12/18
are read as hidden layers here; its text ("the first and last layer contain
784 and 10 units") could also mean 4/10/16 hidden layers.

Model config keys and defaults ("mlp" = paper section 4.1, "deep_mlp" = the
keras seed's 30 x Dense(128) + BatchNorm + Dropout 0.2 with l2 1e-5):

==================  =============  =============
key                 mlp            deep_mlp
==================  =============  =============
depth               6              30
width               100            128
activation          sigmoid        relu
batch_norm          False          True
dropout             0.0            0.2
l2                  0.0            1e-5
kernel_initializer  glorot_uniform he_normal
==================  =============  =============

``l2`` is Keras's coefficient (``l2 * sum(w**2)`` added to the loss) on the
hidden kernels, as in the seed. ``synchronized_batch_norm`` (both: None, on
under more than one replica; see
:func:`tf_bng.models.layers.resolve_synchronized_batch_norm`) has an effect
only with ``batch_norm``.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from tf_bng.models.layers import logits, resolve_synchronized_batch_norm

__all__ = ["mlp", "deep_mlp"]


def mlp(
    depth: int = 6,
    num_classes: int = 10,
    input_shape: Sequence[int] = (784,),
    *,
    width: int = 100,
    activation: str = "sigmoid",
    batch_norm: bool = False,
    dropout: float = 0.0,
    l2: float = 0.0,
    kernel_initializer: str = "glorot_uniform",
    synchronized_batch_norm: bool | None = None,
    name: str = "mlp",
) -> keras.Model:
    """A built MLP with ``depth`` hidden layers that outputs logits."""
    if int(depth) < 0:
        raise ValueError(f"depth must be >= 0, got {depth}.")
    synchronized = resolve_synchronized_batch_norm(synchronized_batch_norm)
    inputs = keras.Input(shape=tuple(input_shape), name="features")
    x = layers.Flatten(name="flatten")(inputs) if len(input_shape) > 1 else inputs
    regularizer = keras.regularizers.L2(float(l2)) if l2 else None
    for i in range(1, int(depth) + 1):
        x = layers.Dense(
            int(width),
            activation=activation,
            kernel_initializer=kernel_initializer,
            kernel_regularizer=regularizer,
            name=f"hidden{i}",
        )(x)
        if batch_norm:
            x = layers.BatchNormalization(synchronized=synchronized, name=f"hidden{i}_bn")(x)
        if dropout:
            x = layers.Dropout(float(dropout), name=f"hidden{i}_dropout")(x)
    return keras.Model(inputs, logits(x, num_classes), name=name)


def deep_mlp(
    depth: int = 30,
    num_classes: int = 10,
    input_shape: Sequence[int] = (784,),
    *,
    width: int = 128,
    activation: str = "relu",
    batch_norm: bool = True,
    dropout: float = 0.2,
    l2: float = 1e-5,
    kernel_initializer: str = "he_normal",
    synchronized_batch_norm: bool | None = None,
    name: str = "deep_mlp",
) -> keras.Model:
    """The keras seed's deep MLP: :func:`mlp` with the seed's settings as defaults."""
    return mlp(
        depth,
        num_classes,
        input_shape,
        width=width,
        activation=activation,
        batch_norm=batch_norm,
        dropout=dropout,
        l2=l2,
        kernel_initializer=kernel_initializer,
        synchronized_batch_norm=synchronized_batch_norm,
        name=name,
    )
