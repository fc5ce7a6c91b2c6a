"""Every public class, function and public method of the API has a docstring (issue 20).

The public API is what ``tf_bng/__init__.py`` and the subpackages' ``__all__`` export. A method
that overrides a documented base method (Keras's ``build``, ``get_config``, ...) inherits that
docstring, as pdoc shows it.

Google style (pdoc renders it with ``--docformat google``): a callable that takes options has an
``Args:`` section naming each of them, and one whose body raises ``ValueError`` / ``TypeError``
itself has a ``Raises:`` section naming that exception. A class may document its constructor in
the class docstring (what pdoc shows) or in ``__init__``'s; a dataclass may use ``Attributes:``.
"""

import ast
import dataclasses
import importlib
import inspect
import re
import textwrap
import types

import tf_bng

PACKAGES = (
    "tf_bng",
    "tf_bng.data",
    "tf_bng.models",
    "tf_bng.problems",
    "tf_bng.problems.quadratic",  # tf_bng.problems has no __all__: pdoc shows its modules
    "tf_bng.step",
    "tf_bng.training",
    "tf_bng.wrappers",
)


def _has_doc(obj) -> bool:
    return bool((inspect.getdoc(obj) or "").strip())


def public_api():
    """(qualified name, object) for every exported class, function and public method."""
    found, seen_modules, seen = [], set(), set()

    def walk(module):
        seen_modules.add(module.__name__)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if isinstance(obj, types.ModuleType):
                if obj.__name__.startswith("tf_bng") and obj.__name__ not in seen_modules:
                    if hasattr(obj, "__all__"):
                        walk(obj)
                continue
            if not (inspect.isclass(obj) or inspect.isfunction(obj)) or id(obj) in seen:
                continue
            seen.add(id(obj))
            qualified = f"{module.__name__}.{name}"
            found.append((qualified, obj))
            if inspect.isclass(obj):
                for attr, raw in vars(obj).items():
                    if attr.startswith("_"):
                        continue
                    if isinstance(raw, property):
                        found.append((f"{qualified}.{attr}", raw))
                    elif inspect.isfunction(raw) or isinstance(raw, (staticmethod, classmethod)):
                        found.append((f"{qualified}.{attr}", getattr(obj, attr)))

    for package in PACKAGES:
        walk(importlib.import_module(package))
    return found


def test_the_walk_finds_the_api():
    names = {name for name, _ in public_api()}
    assert len(names) > 100
    assert {"tf_bng.BlockTransform", "tf_bng.TrainStep", "tf_bng.training.Controller"} <= set(names)
    assert "tf_bng.training.Checkpointer.save" in names  # public methods are walked too


def test_every_public_callable_has_a_docstring():
    missing = [name for name, obj in public_api() if not _has_doc(obj)]
    assert not missing, "public API without a docstring:\n  " + "\n  ".join(missing)


def test_the_check_fails_on_an_undocumented_function():
    def undocumented(x):
        return x

    def documented(x):
        """Returns x."""
        return x

    assert not _has_doc(undocumented) and _has_doc(documented)


_RAISED = ("ValueError", "TypeError")


def _section(doc: str, title: str) -> str | None:
    """The indented body of the Google-style section ``title:`` of ``doc``, or None."""
    lines = doc.splitlines()
    for i, line in enumerate(lines):
        if line.strip() != f"{title}:":
            continue
        indent = len(line) - len(line.lstrip())
        body = []
        for following in lines[i + 1 :]:
            if following.strip() and len(following) - len(following.lstrip()) <= indent:
                break
            body.append(following)
        return textwrap.dedent("\n".join(body))
    return None


def _entries(body: str) -> set[str]:
    """The names an Args / Attributes / Raises body documents (``name:``, ``name (type):``)."""
    return set(re.findall(r"^\*{0,2}(\w+)(?: \([^)]*\))?:", body, re.MULTILINE))


def _overrides_foreign_method(owner: type, attr: str) -> bool:
    """Whether ``owner.attr`` overrides a method of a non-tf_bng base (Keras's, Python's)."""
    return any(
        attr in vars(base) and not base.__module__.startswith("tf_bng")
        for base in owner.__mro__[1:]
    )


def _signature_owner(obj):
    """The callable whose signature and body ``obj``'s docs must cover, or None if exempt.

    A class: its constructor, if a tf_bng class defines it (Exception's or a Keras base's is
    documented there); a method overriding a Keras or Python base method inherits its docs.
    """
    if isinstance(obj, property):
        return None
    if inspect.isclass(obj):
        definer = next(klass for klass in obj.__mro__ if "__init__" in vars(klass))
        return definer.__init__ if definer.__module__.startswith("tf_bng") else None
    return obj


def _options(fn) -> list[str]:
    """The named parameters of ``fn`` (no self / cls, no ``*args`` / ``**kwargs`` forwarding)."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return []
    return [
        p.name
        for p in parameters
        if p.name not in ("self", "cls") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def _raised(fn) -> set[str]:
    """The ``ValueError`` / ``TypeError`` that ``fn``'s own body raises (not nested functions')."""
    try:
        source = textwrap.dedent(inspect.getsource(inspect.unwrap(fn)))
    except (OSError, TypeError):
        return set()
    found = set()

    def visit(node, top=False):
        nested = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
        if not top and isinstance(node, nested):
            return
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name) and exc.id in _RAISED:
                found.add(exc.id)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source).body[0], top=True)
    return found


def missing_sections(obj, owner: type | None = None, attr: str = "") -> list[str]:
    """What ``obj``'s docs lack: ``Args: x, y``, ``Raises: ValueError``; empty if complete.

    ``owner`` / ``attr``: the class that defines ``obj`` as method ``attr``, if it is one.
    """
    if owner is not None and _overrides_foreign_method(owner, attr):
        return []
    fn = _signature_owner(obj)
    if fn is None:
        return []
    docs = [inspect.getdoc(obj) or ""]
    if inspect.isclass(obj):
        docs.append(inspect.getdoc(fn) or "" if fn.__doc__ else "")
    documented, raises = set(), ""
    for doc in docs:
        for title in ("Args", "Attributes") if dataclasses.is_dataclass(obj) else ("Args",):
            documented |= _entries(_section(doc, title) or "")
        raises += _section(doc, "Raises") or ""
    problems = []
    undocumented = [name for name in _options(fn) if name not in documented]
    if undocumented:
        problems.append("Args: " + ", ".join(undocumented))
    unnamed = sorted(exc for exc in _raised(fn) if exc not in _entries(raises))
    if unnamed:
        problems.append("Raises: " + ", ".join(unnamed))
    return problems


def _api_sections() -> dict[str, list[str]]:
    owners = {name: obj for name, obj in public_api() if inspect.isclass(obj)}
    out = {}
    for name, obj in public_api():
        owner_name, _, attr = name.rpartition(".")
        owner = owners.get(owner_name)
        out[name] = missing_sections(obj, owner, attr) if owner else missing_sections(obj)
    return out


def test_every_public_callable_with_options_documents_args_and_raises():
    missing = {name: gaps for name, gaps in _api_sections().items() if gaps}
    assert not missing, "public API without Google-style sections:\n  " + "\n  ".join(
        f"{name}: {'; '.join(gaps)}" for name, gaps in sorted(missing.items())
    )


def test_the_sections_check_fails_on_missing_args_and_raises():
    def bare(count: int, *, name: str = "x") -> int:
        """Doubles ``count``."""
        if count < 0:
            raise ValueError("negative")
        return 2 * count

    def partial(count: int, *, name: str = "x") -> int:
        """Doubles ``count``.

        Args:
            count: How many.

        Raises:
            TypeError: Never.
        """
        if count < 0:
            raise ValueError("negative")
        return 2 * count

    def complete(count: int, *, name: str = "x", **kwargs) -> int:
        """Doubles ``count``.

        Args:
            count (int): How many.
            name: A label.
            **kwargs: Forwarded.

        Returns:
            Twice ``count``.

        Raises:
            ValueError: If ``count`` is negative.
        """
        if count < 0:
            raise ValueError("negative")

        def nested():
            raise TypeError("not raised by complete itself")

        return 2 * count

    def forwarding(*args, **kwargs):
        """Forwards everything."""

    assert missing_sections(bare) == ["Args: count, name", "Raises: ValueError"]
    assert missing_sections(partial) == ["Args: name", "Raises: ValueError"]
    assert missing_sections(complete) == [] and missing_sections(forwarding) == []


def test_a_class_documents_its_constructor_in_either_place():
    class InClassDoc:
        """A thing.

        Args:
            size: How big.
        """

        def __init__(self, size: int):
            self.size = size

    class InInitDoc:
        """A thing."""

        def __init__(self, size: int):
            """Builds it.

            Args:
                size: How big.
            """
            self.size = size

    class Undocumented:
        """A thing."""

        def __init__(self, size: int):
            if size < 0:
                raise ValueError("negative")

    for klass in (InClassDoc, InInitDoc, Undocumented):
        klass.__module__ = "tf_bng.fake"  # constructors of foreign classes are exempt
    assert missing_sections(InClassDoc) == [] and missing_sections(InInitDoc) == []
    assert missing_sections(Undocumented) == ["Args: size", "Raises: ValueError"]


def test_keras_overrides_inherit_their_docs():
    import keras

    class Layer(keras.layers.Layer):
        """A layer."""

        def build(self, input_shape):
            if input_shape is None:
                raise ValueError("no shape")

        def own(self, size: int):
            """Not a Keras method."""

    Layer.__module__ = "tf_bng.fake"
    assert missing_sections(Layer.build, Layer, "build") == []
    assert missing_sections(Layer.own, Layer, "own") == ["Args: size"]


def test_version_matches_the_changelog():
    from pathlib import Path

    changelog = (Path(__file__).resolve().parents[2] / "CHANGELOG.md").read_text()
    assert f"## [{tf_bng.__version__}]" in changelog
