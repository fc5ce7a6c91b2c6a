"""Issue 22: `pip install tf-bng` brings only the library's needs; the binary's are an extra."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata

import pytest
from helpers import binary_env

EXTRA_MODULES = {"tensorflow_datasets", "mlxtend", "matplotlib", "ml_collections"}


def _names(requirements):
    return {re.split(r"[<>=!\[ ;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_library_dependencies_are_only_what_import_tf_bng_needs():
    # The installed distribution's metadata: what pip reads (and no tomllib, absent on 3.10).
    requirements = metadata.requires("tf-bng")
    plain = [r for r in requirements if ";" not in r]
    experiments = [r for r in requirements if re.search(r"extra\s*==\s*.experiments.", r)]
    assert _names(plain) == {"tensorflow", "keras", "absl-py", "numpy"}
    assert _names(experiments) == {
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
