"""Model names -> builders reading their keys from ``model_config``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from tf_bng.data.options import collect_options
from tf_bng.data.spec import DatasetSpec
from tf_bng.models.cifar_resnet import cifar_resnet
from tf_bng.models.mlp import deep_mlp, mlp
from tf_bng.models.preact_resnet import preact_resnet
from tf_bng.models.text import kim_cnn, lstm_lm

__all__ = ["MODELS", "build_model", "default_loss"]

# Each builder passes on only the options given: the model functions'
# signatures hold the defaults, in one place.
Builder = Callable[[dict, DatasetSpec], keras.Model]


def _mlp_builder(fn: Callable) -> Builder:
    def build(options: dict, spec: DatasetSpec) -> keras.Model:
        return fn(num_classes=spec.num_classes, input_shape=spec.input_shape, **options)

    return build


def _image_shape(spec: DatasetSpec, model: str) -> tuple:
    if len(spec.input_shape) != 3:
        raise ValueError(
            f"{model} needs images [height, width, channels]; {spec.name} gives "
            f"examples of shape {spec.input_shape}."
        )
    return spec.input_shape


def _cifar_resnet(options: dict, spec: DatasetSpec) -> keras.Model:
    return cifar_resnet(
        num_classes=spec.num_classes, input_shape=_image_shape(spec, "cifar_resnet"), **options
    )


def _preact_resnet34(options: dict, spec: DatasetSpec) -> keras.Model:
    return preact_resnet(
        num_classes=spec.num_classes, input_shape=_image_shape(spec, "preact_resnet34"), **options
    )


def _lstm_lm(options: dict, spec: DatasetSpec) -> keras.Model:
    return lstm_lm(vocab_size=spec.num_classes, sequence_length=spec.input_shape[0], **options)


def _kim_cnn(options: dict, spec: DatasetSpec) -> keras.Model:
    if not spec.vocab_size:
        raise ValueError(f"kim_cnn needs a text dataset with a vocabulary; {spec.name} has none.")
    if "filter_widths" in options:
        options["filter_widths"] = tuple(options["filter_widths"])
    return kim_cnn(
        vocab_size=spec.vocab_size,
        sequence_length=spec.input_shape[0],
        num_classes=spec.num_classes,
        **options,
    )


def _quadratic(options: dict, spec: DatasetSpec) -> keras.Model:
    from tf_bng.problems.quadratic import QuadraticModel

    model = QuadraticModel(**options)
    model(np.zeros((1,) + spec.input_shape, np.float32))  # build
    return model


_BUILDERS: dict[str, Builder] = {
    "mlp": _mlp_builder(mlp),
    "deep_mlp": _mlp_builder(deep_mlp),
    "cifar_resnet": _cifar_resnet,
    "preact_resnet34": _preact_resnet34,
    "lstm_lm": _lstm_lm,
    "kim_cnn": _kim_cnn,
    "quadratic": _quadratic,
}
MODELS: tuple[str, ...] = tuple(_BUILDERS)


def build_model(model: Any, *, spec: DatasetSpec, **options: Any) -> keras.Model:
    """The built model named ``model`` (one of :data:`MODELS`) for data described by ``spec``.

    Args:
        model: A name of :data:`MODELS`, or a mapping of options holding ``name``.
        spec: The dataset's spec: it sets the input shape, the number of classes and
            the vocabulary.
        **options: The model function's keyword arguments (``depth``, ``width``, ...,
            documented in each :mod:`tf_bng.models` module); ``None`` values mean the
            function's default.

    Returns:
        The built (not compiled) model.

    Raises:
        ValueError: If the name is unknown, the model does not take an option, or the
            model does not fit the data (a ResNet on flat inputs, ``kim_cnn`` without a
            vocabulary).
        TypeError: If ``model`` is neither a name nor a mapping.
    """
    options = collect_options(model, options, kind="model")
    name = options.pop("name", None)
    if name not in _BUILDERS:
        raise ValueError(f"Unknown model {name!r}. Valid choices: {', '.join(MODELS)}.")
    try:
        return _BUILDERS[name](options, spec)
    except TypeError as e:
        if "unexpected keyword argument" in str(e):
            raise ValueError(
                f"Model {name!r} does not take the option {str(e).split()[-1]}."
            ) from None
        raise


def default_loss(spec: DatasetSpec) -> Any:
    """The loss that matches the models' outputs for ``spec.task``.

    Args:
        spec: The dataset's spec; its ``task`` decides.

    Returns:
        Sparse categorical cross-entropy on logits for classification and language
        modelling (averaged over tokens by :func:`tf_bng.losses.per_example_loss_fn`);
        :func:`tf_bng.problems.quadratic.identity_loss` (f(w) itself) for the quadratic.
    """
    if spec.task == "quadratic":
        from tf_bng.problems.quadratic import identity_loss

        return identity_loss
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
