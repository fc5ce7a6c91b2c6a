"""Issue 22: ``tf-bng-train --help`` shows the flags, shipped configs and an example; a missing
``experiments`` extra is named in one line (exit 2)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from tf_bng_trainers import train


def test_help_text_names_flags_shipped_configs_and_an_example():
    text = train.help_text()
    for word in ("--config", "--workdir", "--config.<section>.<key>", "mnist_mlp", "deep_mlp"):
        assert word in text
    assert "example: tf-bng-train --config=mnist_mlp" in text
    assert "configs/" not in train.flags.FLAGS["config"].help


def test_missing_extra_names_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "mlxtend" else real(name)
    )
    line = train.missing_extra()
    assert "mlxtend" in line and "tf-bng[experiments]" in line
    monkeypatch.setattr(importlib.util, "find_spec", real)
    assert train.missing_extra() is None


@pytest.mark.slow
def test_console_script_help_exits_0():
    script = os.path.join(os.path.dirname(sys.executable), "tf-bng-train")
    result = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "shipped configs:" in result.stdout and "--workdir" in result.stdout
