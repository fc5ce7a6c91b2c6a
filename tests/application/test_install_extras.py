"""Issue 22: `pip install tf-bng` brings only the library's needs; the binary's are an extra."""

from __future__ import annotations

import re

import tomllib
from helpers import REPO


def _names(requirements):
    return {re.split(r"[<>=!\[ ;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_library_dependencies_are_only_what_import_tf_bng_needs():
    with open(f"{REPO}/pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    assert _names(project["dependencies"]) == {"tensorflow", "keras", "absl-py", "numpy"}
    assert _names(project["optional-dependencies"]["experiments"]) == {
        "tensorflow-datasets",
        "importlib_resources",
        "ml-collections",
        "mlxtend",
        "matplotlib",
    }
