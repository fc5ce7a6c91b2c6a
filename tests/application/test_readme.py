"""README.md's fenced python blocks stay in step with the code (issue 22).

Every ```python block must compile, and every name it imports from tf_bng must
exist; blocks that need nothing defined by earlier prose run as written, and
all of them run in order in one namespace, as a reader would, after a prelude
that supplies the placeholders (``model``, ``dataset``, ``grads``, ``x``, ``y``).

Every command of every shell block (```bash, sh, shell, console) is either run
as written in a fresh checkout-like directory, bounded to two training steps
(and two seeds, a 2-layer MLP), or checked without running (make targets, pip extras): the
rules are in readme_commands.py, and a command no rule knows fails the test.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import os
import re

import pytest
import readme_commands as shell

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")
FENCE = re.compile(r"^([ \t]*)```(\w+)\n(.*?)^\1```", re.M | re.S)


def blocks(language: str, text: str | None = None) -> list[str]:
    if text is None:
        with open(README) as f:
            text = f.read()
    out = []
    for indent, lang, body in FENCE.findall(text):
        if lang == language:
            lines = body.splitlines()
            out.append("\n".join(line[len(indent) :] for line in lines) + "\n")
    return out


def sections(language: str) -> list[list[str]]:
    """The blocks of each ``## `` section of the README, in order (blockless sections dropped)."""
    with open(README) as f:
        parts = re.split(r"^## ", f.read(), flags=re.M)
    return [found for part in parts if (found := blocks(language, part))]


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
    defined = set(dir(builtins))
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


# What the README leaves to the reader, as small as the blocks allow: MNIST-shaped data.
PRELUDE = """
import keras, numpy as np, tensorflow as tf

keras.utils.set_random_seed(0)
x = np.random.RandomState(0).rand(256, 784).astype(np.float32)
y = np.arange(256) % 10
dataset = tf.data.Dataset.from_tensor_slices((x, y))


def _small_model():
    return keras.Sequential(
        [keras.Input((784,)), keras.layers.Dense(16, activation="sigmoid"), keras.layers.Dense(10)]
    )


model = _small_model()
optimizer = keras.optimizers.Adam(1e-3)
with tf.GradientTape() as tape:
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, model(x))
grads = tape.gradient(loss, model.trainable_variables)
"""
# Placeholders in the blocks themselves, each replaced by what it stands for.
PLACEHOLDERS = {"model = ...  # a built keras.Model": "model = _small_model()"}


@pytest.mark.slow
def test_every_block_runs_in_order(tmp_path, monkeypatch):
    from tf_bng import norms

    monkeypatch.setattr(norms, "_REGISTRY", dict(norms._REGISTRY))
    monkeypatch.chdir(tmp_path)  # the Controller example writes run/
    unused = dict(PLACEHOLDERS)
    ran = 0
    for section in sections("python"):  # a section's blocks build on each other
        namespace: dict = {}
        exec(compile(PRELUDE, "prelude", "exec"), namespace)
        for source in section:
            for placeholder, replacement in PLACEHOLDERS.items():
                if placeholder in source:
                    source = source.replace(placeholder, replacement)
                    unused.pop(placeholder, None)
            exec(compile(source, f"README block {ran}", "exec"), namespace)
            ran += 1
            if "step_counter" in namespace:
                step_counter = namespace["step_counter"]
    assert ran == len(PYTHON)
    assert not unused, f"placeholders no longer in the README: {list(unused)}"
    # The Controller example trained to its end and checkpointed it.
    assert int(step_counter.numpy()) == 1000
    assert os.path.exists(tmp_path / "run" / "checkpoints" / "checkpoint")
    assert os.path.exists(tmp_path / "run" / "metrics.jsonl")


# --- shell blocks ---------------------------------------------------------------------------

COMMANDS = shell.shell_commands()
# Commands with one rule that are not run (one with none or several fails the test below).
CHECKED = [c for c in COMMANDS if len(shell.rules_for(c)) == 1 and not shell.rule_for(c).runs]


def test_the_readme_has_shell_blocks():
    assert shell.shell_block_count() >= 5
    assert len(COMMANDS) >= 12


def test_every_shell_command_has_exactly_one_rule():
    unknown = [str(c) for c in COMMANDS if len(shell.rules_for(c)) != 1]
    assert not unknown, (
        "README shell commands without exactly one rule in tests/application/readme_commands.py: "
        + "; ".join(unknown)
    )
    assert any(shell.rule_for(c).runs for c in COMMANDS)


def test_the_parser_sees_every_command_and_refuses_unknown_operators():
    text = "```bash\nA=1 make x && pip install . ; tf-bng-train \\\n  --help  # c\n```\n"
    commands = shell.shell_commands(text)
    assert [c.argv for c in commands] == [
        ("make", "x"),
        ("pip", "install", "."),
        ("tf-bng-train", "--help"),
    ]
    assert commands[0].env == (("A", "1"),) and commands[2].comment == "c"
    console = "```console\n$ make lint\nruff check .\n```\n"
    assert [c.argv for c in shell.shell_commands(console)] == [("make", "lint")]
    with pytest.raises(ValueError, match="'\\|'"):
        shell.shell_commands("```sh\nmake test | tee log\n```\n")
    unknown = shell.shell_commands("```bash\nrm -rf runs\n```\n")[0]
    with pytest.raises(AssertionError, match="rm -rf runs"):
        shell.rule_for(unknown)


def test_the_model_bound_never_replaces_a_readme_value():
    mlp = ["tf-bng-train", "--config=configs/mnist_mlp.py:depth=18", "--workdir=w"]
    assert shell.bound_train(mlp) == ["--config.train.steps=2", "--config.model.depth=2"]
    assert shell.bound_train([*mlp, "--config.model.depth=6"]) == ["--config.train.steps=2"]
    assert shell.bound_train(["tf-bng-train", "--config=configs/quadratic.py"]) == [
        "--config.train.steps=2"
    ]
    assert shell.bound_train(["tf-bng-train", "--help"]) == []


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(
            c,
            id=f"line{c.line}-{c.argv[0]}",
            marks=[pytest.mark.slow] if shell.rule_for(c).spawns else [],
        )
        for c in CHECKED
    ],
)
def test_checked_command(command):
    shell.rule_for(command).check(command)


# Training command lines (a --help line parses nothing; the run test covers it).
TRAINING = [c for c in COMMANDS if (a := shell.binary_arguments(c)) and "--help" not in a]


@pytest.mark.parametrize("command", TRAINING, ids=str)
def test_binary_command_line_parses(command, monkeypatch):
    # Without training: the flags, the config file and its variants, the --config.* keys.
    from tf_bng_trainers import train

    arguments = shell.binary_arguments(command)
    monkeypatch.chdir(shell.REPO)  # the README's config paths are relative to the checkout
    config, workdir = train.parse_config(["binary", *arguments])
    assert workdir and config.experiment


@pytest.mark.slow
def test_run_commands_run_as_written_in_order(tmp_path):
    # A reader's order: the export of the training block is what saved_model_cli serves.
    checkout = shell.make_checkout(str(tmp_path))
    env = shell.run_environment(str(tmp_path))
    ran = []
    for command in COMMANDS:
        rule = shell.rule_for(command)
        if not rule.runs:
            continue
        result = shell.run(command, rule, checkout, env)
        assert result.returncode == 0, (
            f"{command}: exit {result.returncode}\n{result.stdout[-3000:]}"
        )
        rule.verify(command, result.args, checkout, result.stdout)
        ran.append(rule.name)
    assert {"train", "saved_model_cli", "seeds"} <= set(ran), ran
