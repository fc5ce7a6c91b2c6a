"""Model names -> builders reading their keys from ``model_config``."""

from __future__ import annotations

from typing import Any, Callable

import keras
import numpy as np

from tf_bng.data._config import get_option
from tf_bng.data.spec import DatasetSpec
from tf_bng.models.cifar_resnet import cifar_resnet
from tf_bng.models.mlp import DEEP_MLP_DEFAULTS, MLP_DEFAULTS, mlp
from tf_bng.models.preact_resnet import preact_resnet
from tf_bng.models.text import kim_cnn, lstm_lm

__all__ = ["MODELS", "build_model", "default_loss"]


def _options(config: Any, defaults: dict) -> dict:
    return {key: get_option(config, key, value) for key, value in defaults.items()}


def _mlp_builder(defaults: dict, name: str) -> Callable:
    def build(config: Any, spec: DatasetSpec) -> keras.Model:
        return mlp(
            num_classes=spec.num_classes,
            input_shape=spec.input_shape,
            name=name,
            **_options(config, defaults),
        )

    return build


def _image_shape(spec: DatasetSpec, model: str) -> tuple:
    if len(spec.input_shape) != 3:
        raise ValueError(f"{model} needs images [height, width, channels]; {spec.name} gives "
                         f"examples of shape {spec.input_shape}.")
    return spec.input_shape


def _cifar_resnet(config: Any, spec: DatasetSpec) -> keras.Model:
    return cifar_resnet(
        num_classes=spec.num_classes,
        input_shape=_image_shape(spec, "cifar_resnet"),
        **_options(config, dict(depth=20, shortcut="A", weight_decay=0.0)),
    )


def _preact_resnet34(config: Any, spec: DatasetSpec) -> keras.Model:
    return preact_resnet(
        num_classes=spec.num_classes,
        input_shape=_image_shape(spec, "preact_resnet34"),
        **_options(config, dict(depth=34, base_width=64, weight_decay=0.0)),
    )


def _lstm_lm(config: Any, spec: DatasetSpec) -> keras.Model:
    return lstm_lm(
        vocab_size=spec.num_classes,
        sequence_length=spec.input_shape[0],
        **_options(config, dict(embedding_dim=200, hidden_size=200, num_layers=2, dropout=0.5)),
    )


def _kim_cnn(config: Any, spec: DatasetSpec) -> keras.Model:
    if not spec.vocab_size:
        raise ValueError(f"kim_cnn needs a text dataset with a vocabulary; {spec.name} has none.")
    options = _options(
        config,
        dict(
            embedding_dim=128, filter_widths=(3, 4, 5), num_filters=100, dropout=0.5, max_norm=3.0
        ),
    )
    options["filter_widths"] = tuple(options["filter_widths"])
    return kim_cnn(
        vocab_size=spec.vocab_size,
        sequence_length=spec.input_shape[0],
        num_classes=spec.num_classes,
        **options,
    )


def _quadratic(config: Any, spec: DatasetSpec) -> keras.Model:
    from tf_bng.problems.quadratic import QuadraticModel

    model = QuadraticModel(
        dim=int(get_option(config, "dim", 100)), seed=int(get_option(config, "seed", 0))
    )
    model(np.zeros((1,) + spec.input_shape, np.float32))  # build
    return model


_BUILDERS: dict[str, Callable[[Any, DatasetSpec], keras.Model]] = {
    "mlp": _mlp_builder(MLP_DEFAULTS, "mlp"),
    "deep_mlp": _mlp_builder(DEEP_MLP_DEFAULTS, "deep_mlp"),
    "cifar_resnet": _cifar_resnet,
    "preact_resnet34": _preact_resnet34,
    "lstm_lm": _lstm_lm,
    "kim_cnn": _kim_cnn,
    "quadratic": _quadratic,
}
MODELS: tuple[str, ...] = tuple(_BUILDERS)


def build_model(model_config: Any, *, spec: DatasetSpec) -> keras.Model:
    """The built model ``model_config.name`` for data described by ``spec``."""
    name = get_option(model_config, "name")
    if name not in _BUILDERS:
        raise ValueError(f"Unknown model {name!r}. Valid choices: {', '.join(MODELS)}.")
    return _BUILDERS[name](model_config, spec)


def default_loss(spec: DatasetSpec) -> Any:
    """The loss that matches the models' outputs for ``spec.task``.

    Logits for classification and language modelling (averaged over tokens by
    :func:`tf_bng.losses.per_example_loss_fn`); f(w) itself for the quadratic.
    """
    if spec.task == "quadratic":
        from tf_bng.problems.quadratic import identity_loss

        return identity_loss
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
