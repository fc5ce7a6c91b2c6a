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
    """A built MLP with ``depth`` hidden layers that outputs logits.

    Args:
        depth: Hidden layers (>= 0; 0 is logistic regression).
        num_classes: Units of the output (logits) layer.
        input_shape: Shape of one example; more than one axis is flattened first.
        width: Units of every hidden layer.
        activation: Keras activation of the hidden layers.
        batch_norm: BatchNorm after each hidden layer's activation.
        dropout: Dropout rate after each hidden layer (0: none).
        l2: Keras L2 coefficient on the hidden kernels (0: none).
        kernel_initializer: Keras initializer of the hidden kernels.
        synchronized_batch_norm: All-reduce BatchNorm statistics across replicas; None: on
            under more than one replica (see
            :func:`tf_bng.models.layers.resolve_synchronized_batch_norm`).
            Only matters with ``batch_norm``.
        name: The model's name.

    Returns:
        A built ``keras.Model``.

    Raises:
        ValueError: ``depth`` < 0, or a bad ``synchronized_batch_norm``.
    """
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
    """The keras seed's deep MLP: :func:`mlp` with the seed's settings as defaults.

    Args:
        depth: As :func:`mlp`.
        num_classes: As :func:`mlp`.
        input_shape: As :func:`mlp`.
        width: As :func:`mlp`.
        activation: As :func:`mlp`.
        batch_norm: As :func:`mlp`.
        dropout: As :func:`mlp`.
        l2: As :func:`mlp`.
        kernel_initializer: As :func:`mlp`.
        synchronized_batch_norm: As :func:`mlp`.
        name: As :func:`mlp`.

    Returns:
        A built ``keras.Model``.

    Raises:
        ValueError: As :func:`mlp`.
    """
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
