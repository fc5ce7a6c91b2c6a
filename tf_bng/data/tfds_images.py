"""Image datasets from TensorFlow Datasets: mnist, cifar10, cifar100, imagenet2012.

TFDS is asked only whether the data is prepared in ``data.data_dir`` (TFDS's
default directory when empty); nothing is downloaded unless
``data.download=True``, so an offline machine fails in milliseconds with
:class:`DataUnavailableError` instead of retrying for minutes.

Keys: ``augment`` (default True: CIFAR pad-4 crop + flip, ImageNet random
crop + flip; training only), ``flatten`` (mnist, default True: x is (784,) in
[0, 1] like ``mnist5k``), ``image_size`` (imagenet2012, default 224),
``shuffle_buffer`` (default 10,000), ``manual_dir`` (imagenet2012, default
``<data_dir>/downloads/manual``), ``download`` (default False).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import tensorflow as tf

from tf_bng.data import image_ops
from tf_bng.data.options import get_option
from tf_bng.data.source import Source, limit_of
from tf_bng.data.spec import DatasetSpec
from tf_bng.errors import DataUnavailableError

__all__ = ["MNIST", "CIFAR10", "CIFAR100", "IMAGENET2012", "IMAGENET_TARS"]

IMAGENET_TARS = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")
# fb.resnet.torch's CIFAR statistics (of the 0-255 training images).
_CIFAR10_MEAN = tuple(v / 255 for v in (125.3, 123.0, 113.9))
_CIFAR10_STD = tuple(v / 255 for v in (63.0, 62.1, 66.7))
_CIFAR100_MEAN = tuple(v / 255 for v in (129.3, 124.1, 112.4))
_CIFAR100_STD = tuple(v / 255 for v in (68.2, 65.4, 70.4))
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class _Info:
    tfds_name: str
    num_classes: int
    examples: dict  # split -> count, used when TFDS has no split metadata (mock data)
    eval_split: str
    input_shape: Callable[[Any], tuple]
    preprocess: Callable[[Any, bool], Callable]


def _tfds():
    import tensorflow_datasets as tfds  # imported lazily: slow, and only these datasets need it

    return tfds


def _tfds_data_dir(config: Any) -> str | None:
    data_dir = get_option(config, "data_dir", "")
    return os.path.expanduser(str(data_dir)) if data_dir else None


def _manual_dir(config: Any, builder) -> str:
    manual = get_option(config, "manual_dir", "")
    if manual:
        return os.path.expanduser(str(manual))
    return os.path.join(os.path.dirname(os.path.dirname(builder.data_dir)), "downloads", "manual")


def _missing_message(info: _Info, config: Any, builder) -> str:
    root = os.path.dirname(os.path.dirname(builder.data_dir))
    if info.tfds_name == "imagenet2012":
        manual = _manual_dir(config, builder)
        return (
            f"ImageNet 2012 is not prepared in {root!r}. Download {' and '.join(IMAGENET_TARS)} "
            f"from https://image-net.org/ (registration required), put them in {manual!r} "
            "(or set data.manual_dir), then run once with data.download=True to prepare it "
            "(TFDS extracts and converts them; this takes hours)."
        )
    return (
        f"TFDS dataset {info.tfds_name!r} is not prepared in {root!r}. Run once with "
        "data.download=True on a machine with internet access (TFDS downloads and prepares it "
        f"there), or copy a prepared {info.tfds_name}/ directory into {root!r}, or point "
        "data.data_dir at one."
    )


def _download(info: _Info, config: Any, builder) -> None:
    tfds = _tfds()
    download_config = None
    if info.tfds_name == "imagenet2012":
        manual = _manual_dir(config, builder)
        if not all(os.path.isfile(os.path.join(manual, tar)) for tar in IMAGENET_TARS):
            raise DataUnavailableError(_missing_message(info, config, builder))
        download_config = tfds.download.DownloadConfig(manual_dir=manual)
    builder.download_and_prepare(download_config=download_config)


def _builder(info: _Info, config: Any):
    builder = _tfds().builder(info.tfds_name, data_dir=_tfds_data_dir(config))
    if get_option(config, "download", False) and not builder.is_prepared():
        _download(info, config, builder)
    return builder


def _open(info: _Info, config: Any, split: str, *, training: bool, seed: int) -> tf.data.Dataset:
    """The split as ``(image, label)`` examples; DataUnavailableError if not prepared."""
    tfds = _tfds()
    builder = _builder(info, config)
    limit = limit_of(config)
    try:
        return builder.as_dataset(
            split=f"{split}[:{limit}]" if limit else split,
            as_supervised=True,
            shuffle_files=training,
            read_config=tfds.ReadConfig(shuffle_seed=seed),
        )
    except (AssertionError, FileNotFoundError) as error:  # TFDS: "could not find data in ..."
        raise DataUnavailableError(_missing_message(info, config, builder)) from error


def _count(info: _Info, builder, split: str) -> int:
    splits = builder.info.splits
    if split in splits and splits[split].num_examples:
        return int(splits[split].num_examples)
    return info.examples[split]


def _source(info: _Info) -> Source:
    def spec(config: Any) -> DatasetSpec:
        _open(info, config, info.eval_split, training=False, seed=0)  # fails fast if missing
        builder = _builder(info, config)
        return DatasetSpec(
            name=info.tfds_name,
            task="classification",
            input_shape=info.input_shape(config),
            num_classes=info.num_classes,
            train_examples=_count(info, builder, "train"),
            eval_examples=_count(info, builder, info.eval_split),
        )

    def stream(config: Any, split: str, training: bool, seed: int) -> tf.data.Dataset:
        examples = _open(info, config, split, training=training, seed=seed)
        if not training:
            return examples
        buffer = int(get_option(config, "shuffle_buffer", 10_000))
        return examples.shuffle(buffer, seed=seed, reshuffle_each_iteration=True).repeat()

    return Source(
        spec=spec,
        stream=stream,
        splits=tuple(info.examples),
        eval_split=info.eval_split,
        preprocess=info.preprocess,
    )


def _mnist_preprocess(config: Any, training: bool):
    del training  # no augmentation for MNIST
    flatten = bool(get_option(config, "flatten", True))

    def fn(image, label, seed):
        del seed
        x = image_ops.to_unit_range(image)
        return (tf.reshape(x, [-1]) if flatten else x), tf.cast(label, tf.int32)

    return fn


def _mnist_shape(config: Any) -> tuple:
    return (784,) if get_option(config, "flatten", True) else (28, 28, 1)


def _cifar_preprocess(mean, std):
    def make(config: Any, training: bool):
        augment = training and bool(get_option(config, "augment", True))

        def fn(image, label, seed):
            x = image_ops.normalize_channels(image_ops.to_unit_range(image), mean, std)
            if augment:
                x = image_ops.pad_crop_flip(x, seed)
            return x, tf.cast(label, tf.int32)

        return fn

    return make


def _image_size(config: Any) -> int:
    return int(get_option(config, "image_size", 224))


def _imagenet_preprocess(config: Any, training: bool):
    size = _image_size(config)
    augment = training and bool(get_option(config, "augment", True))

    def fn(image, label, seed):
        x = image_ops.to_unit_range(image)
        if augment:
            x = image_ops.random_resized_crop_flip(x, size, seed)
        else:
            x = image_ops.resize_center_crop(x, size)
        x = image_ops.normalize_channels(x, _IMAGENET_MEAN, _IMAGENET_STD)
        return x, tf.cast(label, tf.int32)

    return fn


MNIST = _source(
    _Info("mnist", 10, {"train": 60_000, "test": 10_000}, "test", _mnist_shape, _mnist_preprocess)
)
CIFAR10 = _source(
    _Info(
        "cifar10",
        10,
        {"train": 50_000, "test": 10_000},
        "test",
        lambda config: (32, 32, 3),
        _cifar_preprocess(_CIFAR10_MEAN, _CIFAR10_STD),
    )
)
CIFAR100 = _source(
    _Info(
        "cifar100",
        100,
        {"train": 50_000, "test": 10_000},
        "test",
        lambda config: (32, 32, 3),
        _cifar_preprocess(_CIFAR100_MEAN, _CIFAR100_STD),
    )
)
IMAGENET2012 = _source(
    _Info(
        "imagenet2012",
        1000,
        {"train": 1_281_167, "validation": 50_000},
        "validation",
        lambda config: (_image_size(config), _image_size(config), 3),
        _imagenet_preprocess,
    )
)
