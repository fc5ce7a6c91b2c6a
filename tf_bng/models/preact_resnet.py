"""Pre-activation ResNet for ImageNet (He et al. 2016b), as in fb.resnet.torch's preresnet.

Stem: 7x7/2 conv, BN, ReLU, 3x3/2 max-pool; four stages of basic blocks
(BN-ReLU-conv3x3-BN-ReLU-conv3x3) with 64/128/256/512 filters; final BN-ReLU,
global average pool, logits. Where the shape changes (first block of stages
2-4) the BN-ReLU is shared by the residual branch and a 1x1 strided
projection shortcut (fb.resnet.torch's "both_preact" + shortcut type B, its
ImageNet default); elsewhere shortcuts are identities.

Model config keys: ``depth`` (34; or 18), ``base_width`` (64: filters of the
first stage, for scaled-down tests), ``weight_decay`` (0.0, torch-style),
``synchronized_batch_norm`` (None: on under more than one replica, see
:func:`tf_bng.models.layers.resolve_synchronized_batch_norm`).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from tf_bng.models.layers import (
    batch_norm,
    conv,
    logits,
    resolve_synchronized_batch_norm,
    weight_decay_regularizer,
)

__all__ = ["preact_resnet", "BLOCKS_PER_STAGE"]

BLOCKS_PER_STAGE = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}


def _bn_relu(x, name: str, synchronized: bool):
    x = batch_norm(x, name=f"{name}_bn", synchronized=synchronized)
    return layers.ReLU(name=f"{name}_relu")(x)


def _block(
    x,
    filters: int,
    strides: int,
    first_in_network: bool,
    weight_decay: float,
    name: str,
    synchronized: bool,
):
    projects = strides != 1 or x.shape[-1] != filters
    if first_in_network:  # the stem already ended with BN-ReLU
        residual = shortcut = x
    elif projects:
        residual = shortcut = _bn_relu(x, f"{name}_preact", synchronized)
    else:
        residual, shortcut = _bn_relu(x, f"{name}_preact", synchronized), x
    if projects:
        shortcut = conv(
            shortcut,
            filters,
            1,
            strides=strides,
            weight_decay=weight_decay,
            name=f"{name}_shortcut_conv",
        )
    y = conv(residual, filters, 3, strides=strides, weight_decay=weight_decay, name=f"{name}_conv1")
    y = _bn_relu(y, f"{name}_mid", synchronized)
    y = conv(y, filters, 3, weight_decay=weight_decay, name=f"{name}_conv2")
    return layers.Add(name=f"{name}_add")([y, shortcut])


def preact_resnet(
    depth: int = 34,
    num_classes: int = 1000,
    input_shape: Sequence[int] = (224, 224, 3),
    *,
    base_width: int = 64,
    weight_decay: float = 0.0,
    synchronized_batch_norm: bool | None = None,
    name: str | None = None,
) -> keras.Model:
    """A built pre-activation ResNet-18/34 that outputs logits.

    Args:
        depth: 18 or 34.
        num_classes: Units of the output (logits) layer.
        input_shape: Shape of one image, ``(height, width, channels)``.
        base_width: Filters of the first stage (doubled per stage); smaller for tests.
        weight_decay: Torch-style coupled decay on conv and dense kernels (0: none).
        synchronized_batch_norm: All-reduce BatchNorm statistics across replicas; None: on
            under more than one replica (see
            :func:`tf_bng.models.layers.resolve_synchronized_batch_norm`).
        name: The model's name; None: ``preact_resnet<depth>``.

    Returns:
        A built ``keras.Model``.

    Raises:
        ValueError: An unsupported ``depth`` (naming the valid ones).
    """
    if int(depth) not in BLOCKS_PER_STAGE:
        raise ValueError(
            f"Unsupported pre-activation ResNet depth {depth!r}. "
            f"Valid choices: {', '.join(map(str, BLOCKS_PER_STAGE))}."
        )
    synchronized = resolve_synchronized_batch_norm(synchronized_batch_norm)
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = conv(inputs, base_width, 7, strides=2, weight_decay=weight_decay, name="stem_conv")
    x = _bn_relu(x, "stem", synchronized)
    x = layers.ZeroPadding2D(1, name="stem_pool_pad")(x)  # after ReLU, zeros never win a max
    x = layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)
    for stage, blocks in enumerate(BLOCKS_PER_STAGE[int(depth)], start=1):
        filters = base_width * 2 ** (stage - 1)
        for block in range(1, blocks + 1):
            x = _block(
                x,
                filters,
                strides=2 if stage > 1 and block == 1 else 1,
                first_in_network=stage == 1 and block == 1,
                weight_decay=weight_decay,
                name=f"stage{stage}_block{block}",
                synchronized=synchronized,
            )
    x = _bn_relu(x, "final", synchronized)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = logits(x, num_classes, kernel_regularizer=weight_decay_regularizer(weight_decay))
    return keras.Model(inputs, outputs, name=name or f"preact_resnet{depth}")
