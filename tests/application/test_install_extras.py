"""Issue 22: `pip install tf-bng` brings only the library's needs; the binary's are an extra."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import tomllib
from helpers import REPO, binary_env

EXTRA_MODULES = {"tensorflow_datasets", "mlxtend", "matplotlib", "ml_collections"}


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


@pytest.mark.slow
def test_the_library_api_imports_none_of_the_extras_modules():
    # What makes the split true: the library never imports them. TensorFlow and Keras
    # import matplotlib themselves when it is installed: only what tf_bng adds counts.
    code = (
        "import sys, keras, tensorflow; top = lambda: {m.split('.')[0] for m in sys.modules}; "
        "before = top(); "
        "import tf_bng, tf_bng.training, tf_bng.step, tf_bng.models, tf_bng.data; "
        f"print(sorted((top() - before) & set({sorted(EXTRA_MODULES)!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=binary_env(),
        cwd="/",
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
