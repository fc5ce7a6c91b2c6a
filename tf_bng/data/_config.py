"""Reading optional keys from an ``ml_collections.ConfigDict`` (or a dict).

Experiment configs are locked and list only the keys an experiment needs, so
every dataset and model option has a default here and a missing key is not an
error.
"""

from __future__ import annotations

from typing import Any

__all__ = ["get_option", "require_option"]

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


def get_option(config: Any, key: str, default: Any = None) -> Any:
    """``config.key`` if present and not None, else ``default``."""
    value = _lookup(config, key)
    return default if value is _MISSING or value is None else value


def require_option(config: Any, key: str) -> Any:
    value = _lookup(config, key)
    if value is _MISSING or value is None:
        raise ValueError(f"Missing required config key {key!r}.")
    return value
