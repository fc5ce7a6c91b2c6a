"""README.md's fenced python blocks stay in step with the code (issue 22, partial).

Every ```python block must compile, and every name it imports from tf_bng must
exist; blocks that need nothing defined by earlier prose run as written.
Still to do: run the blocks that use ``model``/``dataset`` placeholders with a
small prelude, and the bash blocks with the smallest data.
"""

from __future__ import annotations

import ast
import importlib
import os
import re

import pytest

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")
FENCE = re.compile(r"^([ \t]*)```(\w+)\n(.*?)^\1```", re.M | re.S)


def blocks(language: str) -> list[str]:
    with open(README) as f:
        text = f.read()
    out = []
    for indent, lang, body in FENCE.findall(text):
        if lang == language:
            lines = body.splitlines()
            out.append("\n".join(line[len(indent) :] for line in lines) + "\n")
    return out


PYTHON = blocks("python")


def test_the_readme_has_python_blocks():
    assert len(PYTHON) >= 6


@pytest.mark.parametrize("index", range(len(PYTHON)))
def test_block_compiles_and_its_tf_bng_imports_exist(index):
    tree = ast.parse(PYTHON[index])
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tf_bng"):
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{node.module}.{alias.name}"
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "tf_bng"
        ):
            import tf_bng

            assert hasattr(tf_bng, node.attr), f"tf_bng.{node.attr}"


def _self_contained(source: str) -> bool:
    """No name used that the block neither imports nor assigns (``model``, ``grads``...)."""
    tree = ast.parse(source)
    defined = set(dir(__builtins__)) if isinstance(__builtins__, dict) else set(dir(__builtins__))
    defined |= {"__builtins__"}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            defined |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.arg)):
            defined.add(getattr(node, "name", None) or node.arg)
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return used <= defined and "..." not in source


SELF_CONTAINED = [b for b in PYTHON if _self_contained(b)]


def test_some_blocks_run_as_written():
    assert SELF_CONTAINED, "no self-contained python block found"


@pytest.mark.parametrize("index", range(len(SELF_CONTAINED)))
def test_self_contained_block_runs(index, monkeypatch):
    from tf_bng import norms

    # A block may register a norm: keep the process-wide registry as it was for later tests.
    monkeypatch.setattr(norms, "_REGISTRY", dict(norms._REGISTRY))
    exec(compile(SELF_CONTAINED[index], f"README block {index}", "exec"), {})
