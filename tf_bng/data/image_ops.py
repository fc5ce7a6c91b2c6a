"""Per-example image preprocessing, stateless so augmentation is reproducible.

CIFAR follows fb.resnet.torch (the paper's code): normalize each channel,
then zero-pad 4 pixels, take a random 32x32 crop and flip horizontally with
probability 1/2. ImageNet uses the Inception-style random-sized crop + flip
for training and a resize + central crop (ratio 0.875) for evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

__all__ = [
    "to_unit_range",
    "normalize_channels",
    "pad_crop_flip",
    "random_resized_crop_flip",
    "resize_center_crop",
]


def to_unit_range(image: tf.Tensor) -> tf.Tensor:
    """uint8 [0, 255] -> float32 [0, 1].

    Args:
        image: An image tensor of values in [0, 255].

    Returns:
        The float32 image divided by 255.
    """
    return tf.cast(image, tf.float32) / 255.0


def normalize_channels(image: tf.Tensor, mean: Sequence[float], std: Sequence[float]) -> tf.Tensor:
    """(image - mean) / std per channel, on a [0, 1] float image.

    Args:
        image: A float32 ``[height, width, channels]`` image in [0, 1].
        mean: The per-channel means (of the training set, in [0, 1] units).
        std: The per-channel standard deviations.

    Returns:
        The normalized image.
    """
    return (image - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)


def pad_crop_flip(image: tf.Tensor, seed: tf.Tensor, pad: int = 4) -> tf.Tensor:
    """Zero-pad ``pad`` pixels per side, crop back to the original size at random, maybe flip.

    Args:
        image: A ``[height, width, channels]`` image.
        seed: A stateless seed, shape ``[2]``: the same seed gives the same crop and flip.
        pad: Pixels of zeros added on each side before cropping.

    Returns:
        An image of the input's shape.
    """
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
    cropped = tf.image.stateless_random_crop(padded, tf.shape(image), seed=crop_seed)
    return tf.image.stateless_random_flip_left_right(cropped, seed=flip_seed)


def random_resized_crop_flip(image: tf.Tensor, size: int, seed: tf.Tensor) -> tf.Tensor:
    """A random crop of 8%-100% of the area, aspect 3/4-4/3, resized to ``size``, maybe flipped.

    Args:
        image: A ``[height, width, channels]`` image.
        size: The side of the square output.
        seed: A stateless seed, shape ``[2]``: the same seed gives the same crop and flip.

    Returns:
        A float32 ``[size, size, channels]`` image.
    """
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=tf.zeros([1, 0, 4], tf.float32),
        seed=crop_seed,
        min_object_covered=0.1,
        aspect_ratio_range=(3 / 4, 4 / 3),
        area_range=(0.08, 1.0),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    crop = tf.slice(image, begin, crop_size)
    resized = tf.image.resize(crop, [size, size], method="bilinear")
    return tf.image.stateless_random_flip_left_right(resized, seed=flip_seed)


def resize_center_crop(image: tf.Tensor, size: int, crop_ratio: float = 0.875) -> tf.Tensor:
    """Resize the shorter side to ``size / crop_ratio``, then take the central ``size`` square.

    Args:
        image: A ``[height, width, channels]`` image.
        size: The side of the square output.
        crop_ratio: The fraction of the resized shorter side the crop keeps.

    Returns:
        A float32 ``[size, size, channels]`` image.
    """
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = (size / crop_ratio) / tf.reduce_min(shape)
    new_shape = tf.cast(tf.math.ceil(shape * scale), tf.int32)
    resized = tf.image.resize(image, new_shape, method="bilinear")
    top = (new_shape[0] - size) // 2
    left = (new_shape[1] - size) // 2
    return tf.image.crop_to_bounding_box(resized, top, left, size, size)
