"""Every public class, function and public method of the API has a docstring (issue 20).

The public API is what ``tf_bng/__init__.py`` and the subpackages' ``__all__`` export. A method
that overrides a documented base method (Keras's ``build``, ``get_config``, ...) inherits that
docstring, as pdoc shows it.
"""

import importlib
import inspect
import types

import tf_bng

PACKAGES = (
    "tf_bng",
    "tf_bng.data",
    "tf_bng.models",
    "tf_bng.problems",
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
    assert {"tf_bng.BlockTransform", "tf_bng.make_train_step", "tf_bng.training.Controller"} <= set(
        names
    )
    assert "tf_bng.BlockTransform.plan" in names  # public methods are walked too


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


def test_version_matches_the_changelog():
    from pathlib import Path

    changelog = (Path(__file__).resolve().parents[2] / "CHANGELOG.md").read_text()
    assert f"## [{tf_bng.__version__}]" in changelog
