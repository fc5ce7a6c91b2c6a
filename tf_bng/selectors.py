"""Which variables a parameter group holds: regexes on ``variable.path``, predicates, sets.

A selector is a callable ``variable -> bool``. Three kinds:

* :func:`path` (or a compiled ``re.Pattern``): the regex is searched in
  ``variable.path``, as ``exclude`` does; saved with a wrapper optimizer;
* ready-made objects such as :data:`one_dimensional` (rank <= 1: biases,
  normalization gamma/beta — what LARS and LAMB users keep out of the trust
  ratio and weight decay); saved by name;
* any callable ``variable -> bool``; cannot be saved in a ``.keras`` file.

A bare string is refused: ``"bias"`` could be meant as a regex or as a
name, and guessing wrong would silently select other variables.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Callable
from typing import Any

from tf_bng.blocks import variable_path

__all__ = [
    "Selector",
    "PathRegex",
    "Predicate",
    "one_dimensional",
    "path",
    "as_selector",
    "serialize_selector",
    "deserialize_selector",
]


class Selector(abc.ABC):
    """Base class: ``selector(variable) -> bool``; ``get_config()`` when it can be saved."""

    @abc.abstractmethod
    def __call__(self, variable: Any) -> bool:
        """Whether ``variable`` belongs to the group."""

    def get_config(self) -> dict[str, Any]:
        """A callable selector has no saved form.

        Raises:
            ValueError: Always; use :func:`path` or a ready-made selector in a saved model.
        """
        raise ValueError(
            f"{self!r} cannot be saved: use tf_bng.selectors.path(regex) or a ready-made "
            "selector (tf_bng.selectors.one_dimensional) in a model you save."
        )


class PathRegex(Selector):
    """Variables whose ``path`` contains a match of ``pattern`` (``re.search``).

    Args:
        pattern: A regex string or compiled pattern.

    Raises:
        ValueError: If ``pattern`` is not a valid regex.
    """

    def __init__(self, pattern: str | re.Pattern):
        try:
            self.regex = re.compile(pattern)
        except re.error as e:
            raise ValueError(f"Invalid selector regex {pattern!r}: {e}") from None

    def __call__(self, variable: Any) -> bool:
        return self.regex.search(variable_path(variable)) is not None

    def get_config(self) -> dict[str, Any]:
        """``{"path": regex}``, the saved form of this selector."""
        return {"path": self.regex.pattern}

    def __repr__(self) -> str:
        return f"path({self.regex.pattern!r})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, PathRegex) and other.regex.pattern == self.regex.pattern

    def __hash__(self) -> int:
        return hash(("path", self.regex.pattern))


class _Named(Selector):
    """A ready-made selector, saved by its name."""

    def __init__(self, name: str, fn: Callable[[Any], bool]):
        self.name, self._fn = name, fn

    def __call__(self, variable: Any) -> bool:
        return bool(self._fn(variable))

    def get_config(self) -> dict[str, Any]:
        return {"builtin": self.name}

    def __repr__(self) -> str:
        return f"tf_bng.selectors.{self.name}"


class Predicate(Selector):
    """A user function ``variable -> bool`` (not serializable).

    Args:
        fn: ``variable -> bool``; its result is taken as a bool.
    """

    def __init__(self, fn: Callable[[Any], bool]):
        self.fn = fn

    def __call__(self, variable: Any) -> bool:
        return bool(self.fn(variable))

    def __repr__(self) -> str:
        return f"Predicate({getattr(self.fn, '__name__', self.fn)!r})"


def _rank(variable: Any) -> int:
    return len(tuple(variable.shape))


one_dimensional = _Named("one_dimensional", lambda v: _rank(v) <= 1)
_BUILTINS = {"one_dimensional": one_dimensional}


def path(pattern: str | re.Pattern) -> PathRegex:
    """Select variables whose ``variable.path`` matches ``pattern`` (searched).

    Args:
        pattern: A regex string or compiled pattern, e.g. ``r"/bias$"``.

    Returns:
        A selector that can be saved with a wrapper optimizer.

    Raises:
        ValueError: If ``pattern`` is not a valid regex.
    """
    return PathRegex(pattern)


def as_selector(obj: Any) -> Selector:
    """A :class:`Selector` from a selector, a compiled regex or a callable; never a bare string.

    Args:
        obj: A :class:`Selector` (returned as is), a compiled ``re.Pattern`` (a
            :class:`PathRegex`) or a callable ``variable -> bool`` (a :class:`Predicate`).

    Returns:
        The selector.

    Raises:
        TypeError: If ``obj`` is a string (regex or name? write :func:`path`) or none of
            the above.
    """
    if isinstance(obj, Selector):
        return obj
    if isinstance(obj, re.Pattern):
        return PathRegex(obj)
    if isinstance(obj, str):
        raise TypeError(
            f"A group selector cannot be a bare string ({obj!r}): write "
            f"tf_bng.selectors.path({obj!r}) (or re.compile({obj!r})) for a regex on "
            "variable.path, or pass a callable variable -> bool."
        )
    if callable(obj):
        return Predicate(obj)
    raise TypeError(
        f"A group selector must be tf_bng.selectors.path(regex), a compiled regex, a ready-made "
        f"selector such as tf_bng.selectors.one_dimensional, or a callable; got {obj!r}."
    )


def serialize_selector(selector: Selector) -> dict[str, Any]:
    """The saved form of a selector (a regex string or pattern is taken as :func:`path`).

    Args:
        selector: A selector, regex string or compiled pattern.

    Returns:
        A JSON-ready dict that :func:`deserialize_selector` reads back.

    Raises:
        ValueError: If the selector is a plain callable, which cannot be saved.
    """
    return as_selector(selector).get_config()


def deserialize_selector(config: dict[str, Any]) -> Selector:
    """The selector that :func:`serialize_selector` saved.

    Args:
        config: ``{"path": regex}`` or ``{"builtin": name}``.

    Returns:
        The selector.

    Raises:
        ValueError: If ``config`` names no known selector.
    """
    if "path" in config:
        return PathRegex(config["path"])
    name = config.get("builtin")
    if name in _BUILTINS:
        return _BUILTINS[name]
    raise ValueError(
        f"Unknown selector config {config!r}; expected {{'path': regex}} or "
        f"{{'builtin': one of {', '.join(_BUILTINS)}}}."
    )
