"""He et al. (2015) CIFAR ResNet-(6n+2): 3 stages of n basic blocks, 16/32/64 filters.

``shortcut="A"`` (default) is the parameter-free shortcut of the paper's
CIFAR experiments and fb.resnet.torch's CIFAR default (its ``opts.lua`` sets
shortcutType A for cifar10/100 and B for ImageNet): where the shape changes,
subsample by 2 and zero-pad the new channels. ``"B"`` uses a 1x1 strided
convolution + BatchNorm there instead. ResNet-20 has 0.27M parameters and
ResNet-110 1.7M, as in the paper's Table 6.

Model config keys: ``depth`` (20; any 6n+2 >= 8), ``shortcut`` ("A"),
``weight_decay`` (0.0; torch-style coupled decay on conv and dense kernels,
see :func:`tf_bng.models.layers.weight_decay_regularizer`; leave 0 when the
optimizer applies decoupled decay), ``synchronized_batch_norm`` (None: on under
more than one replica, see
:func:`tf_bng.models.layers.resolve_synchronized_batch_norm`).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from tf_bng.models.layers import (
    ZeroPadShortcut,
    batch_norm,
    conv,
    logits,
    resolve_synchronized_batch_norm,
    weight_decay_regularizer,
)

__all__ = ["cifar_resnet", "SHORTCUTS"]

SHORTCUTS = ("A", "B")
STAGE_FILTERS = (16, 32, 64)


def _shortcut(
    x, filters: int, strides: int, kind: str, weight_decay: float, name: str, synchronized: bool
):
    if strides == 1 and x.shape[-1] == filters:
        return x
    if kind == "A":
        return ZeroPadShortcut(filters, strides, name=f"{name}_shortcut")(x)
    x = conv(
        x, filters, 1, strides=strides, weight_decay=weight_decay, name=f"{name}_shortcut_conv"
    )
    return batch_norm(x, name=f"{name}_shortcut_bn", synchronized=synchronized)


def _basic_block(
    x, filters: int, strides: int, kind: str, weight_decay: float, name: str, synchronized: bool
):
    y = conv(x, filters, 3, strides=strides, weight_decay=weight_decay, name=f"{name}_conv1")
    y = batch_norm(y, name=f"{name}_bn1", synchronized=synchronized)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = conv(y, filters, 3, weight_decay=weight_decay, name=f"{name}_conv2")
    y = batch_norm(y, name=f"{name}_bn2", synchronized=synchronized)
    y = layers.Add(name=f"{name}_add")(
        [y, _shortcut(x, filters, strides, kind, weight_decay, name, synchronized)]
    )
    return layers.ReLU(name=f"{name}_relu2")(y)


def cifar_resnet(
    depth: int = 20,
    num_classes: int = 10,
    input_shape: Sequence[int] = (32, 32, 3),
    *,
    shortcut: str = "A",
    weight_decay: float = 0.0,
    synchronized_batch_norm: bool | None = None,
    name: str | None = None,
) -> keras.Model:
    """A built CIFAR ResNet of ``depth = 6n + 2`` layers that outputs logits.

    Args:
        depth: ``6n + 2`` with n >= 1 (20, 32, 44, 56, 110): n basic blocks per stage.
        num_classes: Units of the output (logits) layer.
        input_shape: Shape of one image, ``(height, width, channels)``.
        shortcut: ``"A"`` (zero-padding) or ``"B"`` (1x1 projection), case-insensitive.
        weight_decay: Torch-style coupled decay on conv and dense kernels (0: none).
        synchronized_batch_norm: All-reduce BatchNorm statistics across replicas; None: on
            under more than one replica (see
            :func:`tf_bng.models.layers.resolve_synchronized_batch_norm`).
        name: The model's name; None: ``cifar_resnet<depth>``.

    Returns:
        A built ``keras.Model``.

    Raises:
        ValueError: A depth that is not ``6n + 2``, or an unknown ``shortcut`` (naming the
            valid ones).
    """
    depth = int(depth)
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(
            f"CIFAR ResNet depth must be 6n+2 with n >= 1 (20, 32, 44, 56, 110); got {depth}."
        )
    shortcut = str(shortcut).upper()
    if shortcut not in SHORTCUTS:
        raise ValueError(f"Unknown shortcut {shortcut!r}. Valid choices: {', '.join(SHORTCUTS)}.")
    synchronized = resolve_synchronized_batch_norm(synchronized_batch_norm)
    blocks_per_stage = (depth - 2) // 6

    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = conv(inputs, STAGE_FILTERS[0], 3, weight_decay=weight_decay, name="stem_conv")
    x = layers.ReLU(name="stem_relu")(batch_norm(x, name="stem_bn", synchronized=synchronized))
    for stage, filters in enumerate(STAGE_FILTERS, start=1):
        for block in range(1, blocks_per_stage + 1):
            strides = 2 if stage > 1 and block == 1 else 1
            x = _basic_block(
                x,
                filters,
                strides,
                shortcut,
                weight_decay,
                name=f"stage{stage}_block{block}",
                synchronized=synchronized,
            )
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = logits(x, num_classes, kernel_regularizer=weight_decay_regularizer(weight_decay))
    return keras.Model(inputs, outputs, name=name or f"cifar_resnet{depth}")
