"""Dataset and model options: a plain mapping of keyword options, defaults in the readers.

``get_spec("mnist5k", limit=100)`` and ``build_model("mlp", spec=..., depth=6)``
collect their keyword options into one dict that the dataset and model
modules read with :func:`get_option`, each with its default at the point of
use: the library is the one place where those defaults live. An option given
as ``None`` means "the default".
"""

from __future__ import annotations

from typing import Any

__all__ = ["get_option", "require_option", "collect_options"]

_MISSING = object()


def _lookup(config: Any, key: str) -> Any:
    if config is None:
        return _MISSING
    if isinstance(config, dict):
        return config.get(key, _MISSING)
    try:
        return config[key]  # ConfigDict, FrozenConfigDict
    except (KeyError, AttributeError, TypeError):
        return getattr(config, key, _MISSING)


def collect_options(name_or_options: Any, options: dict, *, kind: str) -> dict:
    """One options dict from ``(name, **options)`` or ``(mapping_with_name, **options)``.

    The mapping form (any object with ``items()``, e.g. a dict of a config
    section) is what earlier versions took and still works.

    Args:
        name_or_options: The dataset or model name, or a mapping of options holding
            ``name``.
        options: Keyword options; they win over the mapping's.
        kind: What the name names (``"dataset"``, ``"model"``), for the message.

    Returns:
        The options with ``name``, without those given as None.

    Raises:
        TypeError: If ``name_or_options`` is neither a string nor a mapping.
    """
    if isinstance(name_or_options, str):
        collected = {"name": name_or_options}
    elif hasattr(name_or_options, "items"):
        collected = dict(name_or_options.items())
    else:
        raise TypeError(f"Expected a {kind} name or a mapping of options, got {name_or_options!r}.")
    collected.update(options)
    return {k: v for k, v in collected.items() if v is not None}


def get_option(config: Any, key: str, default: Any = None) -> Any:
    """``config.key`` if present and not None, else ``default``.

    Args:
        config: A dict, a ``ConfigDict``, an object with attributes, or None.
        key: The option's name.
        default: What an absent or None option means.

    Returns:
        The option's value or ``default``.
    """
    value = _lookup(config, key)
    return default if value is _MISSING or value is None else value


def require_option(config: Any, key: str) -> Any:
    """``config.key``, which must be given.

    Args:
        config: A dict, a ``ConfigDict``, an object with attributes, or None.
        key: The option's name.

    Returns:
        The option's value.

    Raises:
        ValueError: If the option is absent or None.
    """
    value = _lookup(config, key)
    if value is _MISSING or value is None:
        raise ValueError(f"Missing required config key {key!r}.")
    return value
