"""Keras 3 optimizer classes by lowercase name, plus :class:`~tf_bng.AdaGradBNG`.

Any optimizer class of ``keras.optimizers`` is reachable by its lowercase
class name (``sgd``, ``adam``, ``adamw``, ``lion``, ``lamb``, ...): new Keras
optimizers become available without a change here.
"""

from __future__ import annotations

import inspect

import keras

from tf_bng.adagrad_bng import AdaGradBNG

__all__ = ["optimizer_classes", "optimizer_class", "accepted_arguments"]

_NOT_OPTIMIZERS = {"optimizer", "lossscaleoptimizer", "multioptimizer"}


def optimizer_classes() -> dict[str, type]:
    """Lowercase identifier -> optimizer class."""
    classes = {
        name.lower(): cls
        for name, cls in vars(keras.optimizers).items()
        if inspect.isclass(cls)
        and issubclass(cls, keras.optimizers.Optimizer)
        and name.lower() not in _NOT_OPTIMIZERS
    }
    classes["adagrad_bng"] = AdaGradBNG
    return classes


def optimizer_class(name: str) -> type:
    """The class called ``name`` (case-insensitive); the error lists the valid names.

    Args:
        name: A key of :func:`optimizer_classes`, e.g. ``"sgd"``, ``"AdamW"``,
            ``"adagrad_bng"``.

    Returns:
        The optimizer class.

    Raises:
        ValueError: If no optimizer has that name.
    """
    classes = optimizer_classes()
    try:
        return classes[str(name).lower()]
    except KeyError:
        raise ValueError(
            f"Unknown optimizer {name!r}; valid: {', '.join(sorted(classes))}."
        ) from None


def accepted_arguments(cls: type) -> set[str]:
    """The constructor arguments of an optimizer class (with the base class's, via **kwargs).

    Args:
        cls: An optimizer class (see :func:`optimizer_class`).

    Returns:
        The argument names ``cls(...)`` takes, ``self`` and ``kwargs`` included.
    """
    params = inspect.signature(cls.__init__).parameters
    names = set(params)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        names |= set(inspect.signature(keras.optimizers.Optimizer.__init__).parameters)
    return names
