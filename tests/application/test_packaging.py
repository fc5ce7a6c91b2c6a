"""The library/application boundary as a user sees it (issue 10)."""

import os
import subprocess
import sys
import zipfile

import pytest
from helpers import REPO, binary_env

pytestmark = pytest.mark.slow  # subprocesses: a new interpreter, the console script, a wheel


def test_importing_the_library_loads_no_application_or_config_machinery():
    code = (
        "import sys, tf_bng, tf_bng.training, tf_bng.step; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'configs', 'trainers', 'tf_bng_trainers', 'tf_bng_configs', 'ml_collections'}))"
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


def test_the_console_script_runs_a_shipped_config_by_name_from_any_directory(tmp_path):
    script = os.path.join(os.path.dirname(sys.executable), "tf-bng-train")
    workdir = tmp_path / "run"
    result = subprocess.run(
        [
            script,
            "--config=mnist_mlp:depth=2",
            "--config.train.steps=2",
            "--config.data.limit=100",
            "--config.data.batch_size=20",
            f"--workdir={workdir}",
        ],
        capture_output=True,
        text=True,
        env=binary_env(),
        cwd=str(tmp_path),
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (workdir / "metrics.jsonl").exists()


def test_the_wheel_installs_no_generic_top_level_names(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            REPO,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = [p for p in os.listdir(tmp_path) if p.endswith(".whl")]
    names = zipfile.ZipFile(tmp_path / wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"tf_bng", "tf_bng_trainers", "tf_bng_configs"}, top
    assert "tf_bng_configs/mnist_mlp.py" in names and "tf_bng_trainers/train.py" in names
