"""Every experiment config builds and trains 2 steps on tiny offline data; the binary's errors.

Tiny data: TFDS mock data (cifar10, imagenet2012), generated PTB and Rotten
Tomatoes files, ``data.limit`` for MNIST-5k. Models are shrunk through their
own keys (depth, width, image size) so each config runs in seconds.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from tf_bng.problems.quadratic import make_problem
from tf_bng.training.metrics_log import read_records
from tf_bng_configs import base
from tf_bng_trainers.experiment import Experiment as Trainer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXPERIMENTS = (
    "quadratic",
    "mnist_mlp",
    "deep_mlp",
    "cifar_resnet",
    "imagenet_resnet34",
    "ptb_lstm",
    "sentiment_cnn",
)


def write_ptb(directory) -> None:
    words = "the cat sat on the mat and the dog ate the cat food".split()
    for split in ("train", "valid", "test"):
        lines = [" ".join(words[i:] + words[:i]) for i in range(6)]
        (directory / f"ptb.{split}.txt").write_text("\n".join(lines) + "\n")


def write_rt_polarity(directory) -> None:
    folder = directory / "rt-polaritydata"
    folder.mkdir()
    (folder / "rt-polarity.pos").write_bytes(
        "\n".join(f"a fine , moving film number {i}" for i in range(20)).encode("latin-1")
    )
    (folder / "rt-polarity.neg").write_bytes(
        "\n".join(f"a dull and tired mess {i}" for i in range(20)).encode("latin-1")
    )


def tfds_mock(num_examples: int):
    import tensorflow_datasets as tfds

    return tfds.testing.mock_data(num_examples=num_examples)


# experiment -> (variant arg, overrides, data setup(tmp_path) -> context manager)
CASES = {
    "quadratic": ("optimizer=sgd,transform=ng", {}, None),
    "mnist_mlp": ("depth=6,optimizer=momentum,transform=ng_adap", {"data.limit": 40}, None),
    "deep_mlp": ("depth=3", {"data.limit": 40, "model.width": 16}, None),
    "cifar_resnet": (
        "depth=8,dataset=cifar100,optimizer=adam",
        {"data.limit": 8},
        lambda tmp: tfds_mock(8),
    ),
    "imagenet_resnet34": (
        "image_size=32",
        # ResNet-18's blocks are ResNet-34's kinds (stem, stride-2 projections, identity blocks):
        # the same code, half the layers to trace.
        {"data.limit": 4, "model.base_width": 4, "model.depth": 18},
        lambda tmp: tfds_mock(4),
    ),
    "ptb_lstm": ("bptt=5", {"model.hidden_size": 8, "model.embedding_dim": 8}, write_ptb),
    "sentiment_cnn": (
        "optimizer=adagrad,transform=clip",
        {"model.num_filters": 4},
        write_rt_polarity,
    ),
}


@pytest.mark.parametrize("experiment", EXPERIMENTS)
@pytest.mark.slow  # trains or spawns: 79 s (make test-fast skips it)
def test_every_config_trains_two_steps_on_tiny_data(experiment, tmp_path):
    arg, overrides, setup = CASES[experiment]
    config = importlib.import_module(f"tf_bng_configs.{experiment}").get_config(arg)
    settings = {
        "data.batch_size": 4,
        "train.steps": 2,
        "train.steps_per_loop": 2,
        "train.log_every": 2,
        "train.eval_every": 2,
        "train.checkpoint_every": 2,
    }
    if experiment in ("ptb_lstm", "sentiment_cnn"):
        settings["data.data_dir"] = str(tmp_path)
    settings.update(overrides)
    config.update_from_flattened_dict(settings)
    context = contextlib.nullcontext()
    if setup is not None:
        context = setup(tmp_path) or contextlib.nullcontext()
    workdir = str(tmp_path / "run")
    with context:
        trainer = Trainer(config, workdir)
        results = trainer.run()

    assert results["step"] == 2 and int(trainer.optimizer.iterations.numpy()) == 2
    assert math.isfinite(results["train_loss"]) and math.isfinite(results["eval_loss"])
    (train,) = read_records(workdir, "train")
    assert len(train["grad_norm"]) == len(trainer.train_step.block_names) > 0
    assert os.path.exists(os.path.join(workdir, "checkpoints", "ckpt-2.index"))
    assert json.load(open(os.path.join(workdir, "config.json")))["experiment"] == config.experiment
    task = trainer.spec.task
    if task == "classification":
        assert 0.0 <= results["eval_accuracy"] <= 1.0
    if task == "language_model":
        assert results["eval_perplexity"] == pytest.approx(math.exp(results["eval_loss"]), rel=1e-6)
    if task == "quadratic":
        problem = make_problem(100, 0)
        f_star = -0.5 * (problem.b.T @ np.linalg.solve(problem.Q, problem.b)).item()
        assert results["eval_suboptimality"] == pytest.approx(
            results["eval_loss"] - f_star, rel=1e-6
        )
        assert results["eval_suboptimality"] > 0


def test_configs_carry_the_papers_numbers():
    from tf_bng_configs import cifar_resnet, imagenet_resnet34, mnist_mlp, ptb_lstm, sentiment_cnn

    mlp = mnist_mlp.get_config("depth=12,optimizer=adam,transform=ng")
    assert (mlp.model.depth, mlp.model.width, mlp.model.activation) == (12, 100, "sigmoid")
    assert mlp.data.batch_size == 100 and mlp.transform.name == "ng"
    assert (mlp.optimizer.name, mlp.optimizer.learning_rate, mlp.optimizer.epsilon) == (
        "adam",
        1e-3,
        1e-8,
    )
    assert mnist_mlp.get_config("optimizer=adagrad").optimizer.learning_rate == 0.01

    resnet = cifar_resnet.get_config("depth=110,dataset=cifar100")
    assert (resnet.optimizer.name, resnet.optimizer.learning_rate, resnet.optimizer.momentum) == (
        "sgd",
        0.1,
        0.9,
    )
    assert resnet.model.weight_decay == 1e-4 and resnet.data.batch_size == 128
    assert (resnet.schedule.name, tuple(resnet.schedule.boundaries), resnet.train.epochs) == (
        "piecewise",
        (80.0, 120.0),
        160.0,
    )
    assert resnet.transform.name == "ng_adap" and resnet.transform.alpha == 0.02
    assert cifar_resnet.get_config("optimizer=adam").optimizer.learning_rate == 1e-3
    assert cifar_resnet.get_config("transform=clip").transform.threshold == 0.1

    imagenet = imagenet_resnet34.get_config()
    assert (
        imagenet.data.batch_size,
        imagenet.train.epochs,
        imagenet.schedule.name,
        imagenet.schedule.decay_rate,
    ) == (64, 50.0, "exponential", 0.001)
    ptb = ptb_lstm.get_config("bptt=400")
    assert (
        ptb.data.bptt,
        ptb.model.hidden_size,
        ptb.model.num_layers,
        ptb.model.dropout,
        ptb.data.batch_size,
    ) == (400, 200, 2, 0.5, 100)
    cnn = sentiment_cnn.get_config()
    assert (cnn.model.embedding_dim, cnn.data.train_fraction) == (128, 0.9)


def test_variant_argument_errors_name_the_valid_keys():
    from tf_bng_configs import mnist_mlp

    with pytest.raises(ValueError, match="key in depth, optimizer, transform, dataset"):
        mnist_mlp.get_config("depht=6")
    with pytest.raises(ValueError, match="Config argument depth: invalid literal"):
        mnist_mlp.get_config("depth=six")
    with pytest.raises(ValueError, match="Unknown transform 'foo'"):
        mnist_mlp.get_config("transform=foo")
    assert base.parse_arg(" depth=6 , optimizer=sgd ", {"depth": 1, "optimizer": "adam"}) == {
        "depth": 6,
        "optimizer": "sgd",
    }


def test_configs_are_locked():
    from tf_bng_configs import quadratic

    config = quadratic.get_config()
    with pytest.raises(AttributeError):
        config.train.stepz = 3
    config.train.steps = 3  # existing keys stay writable


def _run_binary(*flags: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", NO_GCE_CHECK="true")
    return subprocess.run(
        [sys.executable, "-m", "trainers.train", *flags],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


@pytest.mark.slow
@pytest.mark.parametrize(
    "flag, message",
    [
        (
            "--config.transform.name=foo",
            "error: transform.name: Unknown transform 'foo'. Valid choices: 'none', 'ng', "
            "'ng_adap', 'clip', 'global_clip'.",
        ),
        (
            "--config.transform.nmae=ng",
            'error: unknown config key --config.transform.nmae (Did you mean "name" instead of '
            '"nmae"?)',
        ),
    ],
)
def test_binary_rejects_a_wrong_override_with_one_line(flag, message, tmp_path):
    result = _run_binary("--config=configs/quadratic.py", f"--workdir={tmp_path}", flag)
    assert result.returncode != 0
    assert _error_lines(result) == [message]
    assert "Traceback" not in result.stderr
    assert not os.path.exists(os.path.join(tmp_path, "metrics.jsonl"))


def test_adagrad_bng_preset_turns_the_default_transform_off_but_keeps_a_named_one():
    from tf_bng.errors import ConfigError
    from tf_bng_configs import mnist_mlp
    from tf_bng_trainers.config_checks import validate_config

    config = mnist_mlp.get_config("optimizer=adagrad_bng")  # mnist_mlp's default transform is ng
    assert (config.optimizer.name, config.transform.name) == ("adagrad_bng", "none")
    assert "transform=none" in config.experiment
    validate_config(config)
    named = mnist_mlp.get_config("optimizer=adagrad_bng,transform=ng")
    assert named.transform.name == "ng"
    with pytest.raises(ConfigError, match="optimizer.name='adagrad_bng'.*transform.name='ng'"):
        validate_config(named)
    assert mnist_mlp.get_config("optimizer=adam").transform.name == "ng"
