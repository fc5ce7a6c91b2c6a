"""Environment faults before training end in one line and exit code 2 (issue 19).

A read-only workdir that already holds a run (its ``.cache`` directories
exist, so the caches pointed there used to fail on import) and a ``--config``
that names no file and no shipped config. The read-only workdir is real: a
read-only bind mount when this process is root (root ignores file modes),
``chmod -R a-w`` otherwise.
"""

from __future__ import annotations

import os
import stat
import subprocess

import pytest
from helpers import REPO, binary_env, error_lines

from tf_bng_trainers.shipped_configs import (
    UnknownConfigError,
    resolve_config_argv,
    shipped_config_names,
)

QUADRATIC = f"--config={REPO}/configs/quadratic.py:optimizer=sgd,transform=ng,steps=1"
TIMEOUT = 180


def run_binary(tmp_path, *argv) -> tuple[int, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    result = subprocess.run(
        [os.sys.executable, "-m", "trainers.train", *argv],
        cwd=REPO,
        env=binary_env(home=str(home)),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    return result.returncode, result.stderr


def assert_one_line(stderr: str) -> str:
    lines = error_lines(stderr)
    assert len(lines) == 1 and "Traceback" not in stderr, stderr[-3000:]
    return lines[0]


def _make_read_only(path: str):
    """Make ``path`` read-only for this process; returns the undo function."""
    if os.geteuid() == 0:
        subprocess.run(["mount", "--bind", path, path], check=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", path, path], check=True)
        return lambda: subprocess.run(["umount", "-l", path], check=False)
    modes = {}
    for root, dirs, files in os.walk(path):
        for name in [root] + [os.path.join(root, n) for n in dirs + files]:
            modes[name] = os.stat(name).st_mode
            os.chmod(name, modes[name] & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))

    def undo():
        for name, mode in modes.items():
            os.chmod(name, mode)

    return undo


@pytest.mark.slow
def test_a_read_only_workdir_holding_a_run_is_one_line_and_exit_2(tmp_path):
    workdir = str(tmp_path / "run")
    code, stderr = run_binary(tmp_path, QUADRATIC, f"--workdir={workdir}")
    assert code == 0, stderr[-3000:]
    assert os.path.isdir(os.path.join(workdir, ".cache", "matplotlib"))  # what used to break
    undo = _make_read_only(workdir)
    try:
        with pytest.raises(OSError):  # really read-only
            open(os.path.join(workdir, "probe"), "w").close()
        code, stderr = run_binary(tmp_path, QUADRATIC, f"--workdir={workdir}")
    finally:
        undo()
    assert code == 2, stderr[-3000:]
    line = assert_one_line(stderr)
    assert line.startswith(f"error: workdir '{workdir}' is not writable"), line


@pytest.mark.parametrize("value", ["configs/nope.py", "nope:depth=2", "mnist_mpl"])
def test_an_unknown_config_names_the_shipped_ones(value):
    with pytest.raises(UnknownConfigError) as error:
        resolve_config_argv(["train", f"--config={value}", "--workdir=x"])
    assert error.value.exit_code == 2
    path = value.partition(":")[0]
    names = ", ".join(shipped_config_names())
    assert str(error.value) == (
        f"--config={path}: no such config file and no shipped config of that name; shipped "
        f"configs: {names} (or pass the path of a config file)."
    )
    assert "mnist_mlp" in names and "quadratic" in names


def test_the_binary_exits_2_with_one_line_for_an_unknown_config(tmp_path):
    code, stderr = run_binary(tmp_path, "--config=configs/nope.py", f"--workdir={tmp_path}/w")
    assert code == 2, stderr[-3000:]
    line = assert_one_line(stderr)
    assert line.startswith("error: --config=configs/nope.py: no such config file and no shipped")
    assert "shipped configs: cifar_resnet, deep_mlp" in line
    assert "cuda" not in stderr.lower()  # it failed before TensorFlow was imported
