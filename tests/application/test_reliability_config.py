"""Bad configurations fail before training with one line naming the key and the choices.

Each value is validated once, by the library constructor that takes it; the
application names the config key in front of the library's message. The
binary's own parsing and run function are driven in-process (one process per
example would be too slow), plus a property test over random valid and
invalid overrides, and two real subprocess runs for the exit code.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import time

import pytest
from helpers import REPO, binary_env, error_lines, preserved_environ
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tf_bng import BLOCK_MODES, TRANSFORMS, available_norms
from tf_bng.errors import ConfigError
from tf_bng.schedules import SCHEDULES
from tf_bng.training.metrics_log import read_records
from tf_bng_configs import base
from tf_bng_trainers import train
from tf_bng_trainers.config_checks import LIBRARY_ARGUMENTS, config_errors

QUADRATIC = f"--config={REPO}/configs/quadratic.py:optimizer=sgd,transform=ng,steps=1"


def run_in_process(*argv: str) -> tuple[int, str]:
    """What the binary would do with ``argv``: ``(exit code, stderr)``."""
    stderr = io.StringIO()
    with preserved_environ(), contextlib.redirect_stderr(stderr):
        try:
            config, workdir = train.parse_config(["train", *argv])
        except train.CommandLineError as e:
            print(f"error: {e}", file=sys.stderr)  # what the binary's flag parser prints
            return 1, stderr.getvalue()
        return train.run_experiment(config, workdir), stderr.getvalue()


def assert_one_line_error(code: int, stderr: str, *expected: str) -> str:
    lines = error_lines(stderr)
    assert code != 0 and len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert any(text in lines[0] for text in expected), lines[0]
    return lines[0]


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (
            ["--config.optimizer.learning_rate=-0.1"],
            "error: optimizer.learning_rate=-0.1 must be > 0 and finite.",
        ),
        (["--config.transform.alpha=0"], "error: transform.alpha: alpha must be > 0, got 0.0."),
        (
            ["--config.transform.threshold=-1"],
            "error: transform.threshold: threshold must be > 0, got -1.0.",
        ),
        (
            ["--config.transform.norm=l3"],
            "error: transform.norm: Unknown norm 'l3'. Registered norms: avg_l1, avg_l1_l2, "
            "avg_l2, l1, l1_l2, l2",
        ),  # (sorted: a norm another test registered in this process may follow l2)
        (
            ["--config.transform.blocks=layers"],
            "error: transform.blocks: Unknown blocks 'layers'. Valid choices: 'layer', 'variable', "
            "'global'.",
        ),
        (
            ["--config.optimizer.name=adamm"],
            "error: optimizer.name: Unknown optimizer 'adamm'; valid: adadelta, adafactor, "
            "adagrad, adagrad_bng, adam,",
        ),
        (
            ["--config.schedule.name=linear"],
            "error: schedule.name: Unknown schedule 'linear'; valid: constant, piecewise, "
            "exponential, cosine, polynomial.",
        ),
        (
            ["--config.data.name=foo"],
            "error: data.name: Unknown dataset 'foo'. Valid choices: mnist5k, digits,",
        ),
        (["--config.data.limit=0"], "error: data.limit must be positive, got 0."),
        (["--config.data.batch_size=0"], "error: data.batch_size=0 must be >= 1."),
        (
            ["--config.model.name=foo"],
            "error: model.name: Unknown model 'foo'. Valid choices: mlp, deep_mlp,",
        ),
        (
            ["--config.train.accumulation_steps=0"],
            "error: train.accumulation_steps: accumulation_steps must be >= 1, got 0.",
        ),
        (
            ["--config.train.steps_per_loop=0"],
            "error: train.steps_per_loop: total_steps and steps_per_loop must be >= 1; got 1, 0.",
        ),
        (
            ["--config.train.keep_checkpoints=0"],
            "error: train.keep_checkpoints: max_to_keep must be >= 1, got 0.",
        ),
        (
            ["--config.transform.backward_scaling=True", "--config.transform.name=clip"],
            "error: transform.backward_scaling: backward_scaling needs a transform that uses only "
            "each block's direction (ng, ng_adap); transform is 'clip'",
        ),
        (
            ["--config.runtime.strategy=gpu"],
            "error: runtime.strategy: Unknown strategy 'gpu'; valid: default, one_device, "
            "mirrored, multi_worker, tpu.",
        ),
        (
            ["--config.runtime.mixed_precision=fp8"],
            "error: runtime.mixed_precision: Unknown mixed precision 'fp8'; valid: none, "
            "mixed_float16, mixed_bfloat16.",
        ),
        (
            ["--config.train.stepz=3"],
            'error: unknown config key --config.train.stepz (Did you mean "steps" instead of '
            '"stepz"?)',
        ),
        (
            ["--config.optimizer.name=adagrad_bng"],
            "error: optimizer.name='adagrad_bng' normalizes each block itself, so "
            "transform.name='ng' would normalize twice; set transform.name=none or choose another "
            "optimizer.",
        ),
        (
            ["--config.runtime.jit_compile=True", "--config.runtime.strategy=tpu"],
            "error: runtime.jit_compile=True does not apply to runtime.strategy='tpu' (it compiles "
            "the step itself); set runtime.jit_compile=False.",
        ),
        (
            ["--config.runtime.strategy=mirrored", "--config.data.batch_size=3"],
            "error: data.batch_size=3 is not divisible by the 2 replicas of runtime.strategy "
            "(MirroredStrategy); choose a multiple of 2.",
        ),
    ],
)
def test_bad_value_fails_with_one_line_before_training(overrides, expected, tmp_path):
    code, stderr = run_in_process(QUADRATIC, f"--workdir={tmp_path}", *overrides)
    assert_one_line_error(code, stderr, expected)
    assert not os.path.exists(tmp_path / "checkpoints")


def test_a_bad_loss_scale_names_both_keys_of_the_library_argument_check(tmp_path):
    # DynamicLossScale checks its arguments together; mixed_float16 needs a model that runs it.
    code, stderr = run_in_process(
        f"--config={REPO}/configs/mnist_mlp.py:depth=1,dataset=digits",
        f"--workdir={tmp_path}",
        "--config.runtime.mixed_precision=mixed_float16",
        "--config.runtime.loss_scale_growth_interval=0",
        "--config.train.steps=1",
    )
    assert code == 2
    assert_one_line_error(
        code,
        stderr,
        "error: runtime.loss_scale_initial / runtime.loss_scale_growth_interval: Need "
        "initial_scale > 0, factor > 1 and growth_interval >= 1; got 32768.0, 2.0, 0.",
    )
    assert not os.path.exists(tmp_path / "checkpoints")


def test_every_library_argument_maps_to_a_config_key():
    config = base.get_base_config()
    for section, arguments in LIBRARY_ARGUMENTS.items():
        for argument, key in arguments.items():
            group, leaf = key.split(".")
            assert leaf in config[group], f"{section}: {argument} -> {key}"


def test_a_library_message_gets_the_keys_it_names_or_the_section():
    with pytest.raises(ConfigError, match=r"^transform\.alpha: alpha must be > 0, got 0\.0\.$"):
        with config_errors("transform"):
            raise ValueError("alpha must be > 0, got 0.0.")
    with pytest.raises(ConfigError, match=r"^data: no such split$"):
        with config_errors("data"):
            raise ValueError("no such split")
    with pytest.raises(ConfigError, match=r"^optimizer\.momentum=2 is not an argument"):
        with config_errors("optimizer"):  # the library already named the key
            raise ValueError("optimizer.momentum=2 is not an argument of Adam.")
    with pytest.raises(TypeError):  # only ValueError is a config error; the rest are bugs
        with config_errors("data"):
            raise TypeError("a bug")


def test_unwritable_workdir_fails_with_one_line(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code, stderr = run_in_process(QUADRATIC, f"--workdir={blocker}/run")
    assert code == 2
    assert_one_line_error(code, stderr, f"error: workdir '{blocker}/run' is not writable")


def test_dataset_missing_offline_fails_fast_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "no_tfds"))
    started = time.monotonic()
    code, stderr = run_in_process(
        f"--config={REPO}/configs/mnist_mlp.py:dataset=mnist", f"--workdir={tmp_path / 'run'}"
    )
    assert time.monotonic() - started < 30  # no download retries
    assert_one_line_error(code, stderr, "error: TFDS dataset 'mnist' is not prepared in")


# -- property test: random valid and invalid overrides ---------------------------------------

VALID = {
    "optimizer.learning_rate": st.floats(1e-3, 0.5).map(repr),
    "optimizer.name": st.sampled_from(["sgd", "adam", "adagrad", "rmsprop", "adagrad_bng"]),
    "transform.name": st.sampled_from(TRANSFORMS),
    "transform.norm": st.sampled_from(available_norms()),
    "transform.blocks": st.sampled_from(BLOCK_MODES),
    "transform.alpha": st.floats(1e-3, 1.0).map(repr),
    "transform.threshold": st.floats(1e-3, 10.0).map(repr),
    "data.batch_size": st.sampled_from(["1", "2", "3", "4"]),
    "train.steps_per_loop": st.sampled_from(["1", "2"]),
    "train.max_bad_steps": st.sampled_from(["0", "5"]),
    "schedule.name": st.sampled_from(SCHEDULES),
    "runtime.strategy": st.sampled_from(["default", "one_device", "mirrored"]),
    "runtime.jit_compile": st.sampled_from(["false", "true"]),
}
INVALID = {
    "optimizer.learning_rate": st.sampled_from(["0", "-0.1", "nan", "inf", "fast"]),
    "optimizer.name": st.sampled_from(["adamm", "sgd2"]),
    "transform.name": st.sampled_from(["foo", "NG"]),
    "transform.norm": st.sampled_from(["l3", "L2"]),
    "transform.blocks": st.sampled_from(["layers", "tensor"]),
    "transform.alpha": st.sampled_from(["0", "-0.02", "nan"]),
    "transform.threshold": st.sampled_from(["0", "-1"]),
    "data.batch_size": st.sampled_from(["0", "-2", "1.5"]),
    "train.steps_per_loop": st.sampled_from(["0", "-1"]),
    "train.max_bad_steps": st.sampled_from(["-1"]),
    "schedule.name": st.sampled_from(["linear", "cosine_decay"]),
    "runtime.strategy": st.sampled_from(["tpu_pod", "gpu"]),
    "runtime.jit_compile": st.sampled_from(["maybe", "2"]),
}
UNKNOWN_KEYS = ("train.stepz", "optimizer.nme", "runtime.strategyy")


@st.composite
def overrides(draw) -> tuple[dict, list]:
    """``(settings, invalid keys)``: 1-3 overrides, each valid with probability 2/3."""
    keys = draw(st.lists(st.sampled_from(sorted(VALID)), min_size=1, max_size=3, unique=True))
    settings, invalid = {}, []
    for key in keys:
        good = draw(st.sampled_from([True, True, False]))
        settings[key] = draw(VALID[key] if good else INVALID[key])
        if not good:
            invalid.append(key)
    if draw(st.integers(0, 5)) == 0:
        key = draw(st.sampled_from(UNKNOWN_KEYS))
        settings[key], invalid = "1", invalid + [key]
    mirrored = settings.get("runtime.strategy") == "mirrored"
    if mirrored and int(float(settings.get("data.batch_size", "2").lstrip("-") or 0)) % 2:
        invalid.append("data.batch_size")  # two replicas in the test process
    if (
        settings.get("optimizer.name") == "adagrad_bng"
        and settings.get("transform.name", "ng") in TRANSFORMS  # QUADRATIC names ng
        and settings.get("transform.name", "ng") != "none"
    ):
        invalid.append("optimizer.name")  # AdaGradBNG after a block transform normalizes twice
    return settings, invalid


@settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(case=overrides())
@pytest.mark.slow  # trains or spawns: 28 s (make test-fast skips it)
def test_random_overrides_train_a_step_or_fail_with_one_line(case, tmp_path_factory):
    settings_, invalid = case
    workdir = tmp_path_factory.mktemp("property")
    flags = [f"--config.{key}={value}" for key, value in settings_.items()]
    event("invalid" if invalid else "valid")
    code, stderr = run_in_process(QUADRATIC, f"--workdir={workdir}", *flags)
    if invalid:
        assert_one_line_error(code, stderr, *invalid)
        assert not os.path.exists(workdir / "checkpoints")
    else:
        assert code == 0, stderr
        assert "Traceback" not in stderr and not error_lines(stderr)
        assert read_records(str(workdir), "train")[-1]["step"] == 1


# -- the real binary: exit code and a single line ------------------------------------------------


@pytest.mark.slow  # trains or spawns: 23 s (make test-fast skips it)
def test_binary_exits_non_zero_with_one_line_before_training(tmp_path):
    workdir = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainers.train",
            QUADRATIC,
            f"--workdir={workdir}",
            "--config.transform.alpha=-0.5",
            "--config.transform.name=ng_adap",
        ],
        cwd=REPO,
        env=binary_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert error_lines(result.stderr) == ["error: transform.alpha: alpha must be > 0, got -0.5."]
    assert "Traceback" not in result.stderr
    assert not os.path.exists(workdir / "checkpoints") and not os.path.exists(
        workdir / "metrics.jsonl"
    )
