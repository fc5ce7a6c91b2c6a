"""README.md's shell blocks as commands, each one run or checked (issue 22).

Every command of a fenced ``bash`` / ``sh`` / ``shell`` / ``console`` block must
match exactly one :class:`Rule`; a command that matches none fails the test, so
a new README block cannot escape. A rule either

- **runs** the command as written, in a fresh directory laid out like a
  checkout (:func:`make_checkout`), with at most appended overrides that
  bound its length and model size (:attr:`Rule.bound`), then checks what it
  left; or
- **checks** it without running it, where running it inside the test would be
  recursive (``make test``), minutes long (``make demo``) or would install
  packages (``pip install``): the make target exists, the extras exist.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from importlib import metadata, util

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
README = os.path.join(REPO, "README.md")
SHELLS = ("bash", "sh", "shell", "console")
FENCE = re.compile(r"^([ \t]*)```(\w+)\n(.*?)^\1```", re.M | re.S)
OPERATORS = ("&&", ";")  # command separators a README line may use; any other is refused
PUNCTUATION = set("();<>|&")
# Seconds one run command may take on a loaded 2-core machine; a bound, not the expected time.
RUN_TIMEOUT = 900


@dataclasses.dataclass(frozen=True)
class Command:
    """One command of a README shell block."""

    line: int  # README line where it starts
    argv: tuple[str, ...]  # as the shell would pass it
    env: tuple[tuple[str, str], ...] = ()  # leading NAME=value assignments
    comment: str = ""  # the line's trailing ``# ...`` comment, without the ``#``

    def __str__(self) -> str:
        return f"README.md:{self.line}: {shlex.join(self.argv)}"


def _split_comment(line: str) -> tuple[str, str]:
    """``(code, comment)``: a ``#`` outside quotes at a word's start begins the comment."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i], line[i + 1 :].strip()
    return line, ""


def _logical_lines(body: str, language: str, first_line: int) -> list[tuple[int, str]]:
    """``(line number, text)`` with backslash continuations joined; console output dropped."""
    out: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, raw in enumerate(body.splitlines(), first_line):
        if pending is None:
            if language == "console":
                if not raw.lstrip().startswith("$ "):
                    continue  # output of the previous command
                raw = raw.lstrip()[2:]
            pending = (number, "")
        text = pending[1] + raw
        if text.endswith("\\"):
            pending = (pending[0], text[:-1] + " ")
            continue
        out.append((pending[0], text))
        pending = None
    if pending is not None:
        raise ValueError(f"README.md:{pending[0]}: a continuation line ends the block")
    return out


def parse_line(number: int, text: str) -> list[Command]:
    """The commands of one logical line (``a && b; c``); other operators raise ValueError."""
    code, comment = _split_comment(text)
    lexer = shlex.shlex(code, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    commands, words = [], []
    for token in [*lexer, ";"]:
        if token and set(token) <= PUNCTUATION:
            if token not in OPERATORS:
                raise ValueError(
                    f"README.md:{number}: shell operator {token!r} is not supported "
                    f"(only {', '.join(OPERATORS)}): give the test a rule for it"
                )
            env = []
            while words and re.match(r"^[A-Za-z_]\w*=", words[0]):
                env.append(tuple(words.pop(0).split("=", 1)))
            if words:
                commands.append(Command(number, tuple(words), tuple(env), comment))
            words = []
        else:
            words.append(token)
    return commands


def shell_commands(text: str | None = None) -> list[Command]:
    """Every command of every shell block of the README, in order."""
    if text is None:
        with open(README) as f:
            text = f.read()
    commands = []
    for match in FENCE.finditer(text):
        indent, language, body = match.groups()
        if language not in SHELLS:
            continue
        first_line = text.count("\n", 0, match.start()) + 2
        body = "\n".join(line[len(indent) :] for line in body.splitlines())
        for number, line in _logical_lines(body, language, first_line):
            commands.extend(parse_line(number, line))
    return commands


def shell_block_count(text: str | None = None) -> int:
    if text is None:
        with open(README) as f:
            text = f.read()
    return sum(1 for m in FENCE.finditer(text) if m.group(2) in SHELLS)


# --- which command is which ---------------------------------------------------------------

PYTHONS = ("python", "python3", ".venv/bin/python", ".venv/bin/python3")


def _python_module(argv: Sequence[str], *modules: str) -> bool:
    return len(argv) >= 3 and argv[0] in PYTHONS and argv[1] == "-m" and argv[2] in modules


def _is_train(argv: Sequence[str]) -> bool:
    return argv[0] in ("tf-bng-train", ".venv/bin/tf-bng-train") or _python_module(
        argv, "trainers.train", "tf_bng_trainers.train"
    )


def _is_seeds(argv: Sequence[str]) -> bool:
    return _python_module(argv, "trainers.seeds", "tf_bng_trainers.seeds")


def _is_pip_install(argv: Sequence[str]) -> bool:
    pip = argv[0] in ("pip", "pip3", ".venv/bin/pip", ".venv/bin/pip3") and argv[1:2] == (
        "install",
    )
    return pip or (_python_module(argv, "pip") and argv[3:4] == ("install",))


def _binary_argv(argv: Sequence[str]) -> list[str]:
    """The binary's own arguments (after ``python -m module`` or the console script)."""
    return list(argv[3:] if argv[0] in PYTHONS else argv[1:])


def _flag(argv: Sequence[str], name: str) -> str | None:
    """The last ``--name=value`` of a command line (absl: the last one wins)."""
    values = [a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")]
    return values[-1] if values else None


# --- checks (commands not run) --------------------------------------------------------------


def _makefile() -> str:
    with open(os.path.join(REPO, "Makefile")) as f:
        return f.read()


def check_make(command: Command) -> None:
    """Each target is a rule of the Makefile and ``make -n TARGET`` accepts it from the root."""
    targets = command.argv[1:]
    assert targets and not any(t.startswith("-") for t in targets), f"{command}: options?"
    makefile = _makefile()
    for target in targets:
        assert re.search(rf"^{re.escape(target)}\s*:", makefile, re.M), (
            f"{command}: no rule for {target!r} in the Makefile"
        )
        result = subprocess.run(
            ["make", "-n", target], cwd=REPO, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, f"{command}: make -n {target}: {result.stderr}"


def check_venv(command: Command) -> None:
    """``python3 -m venv DIR``: the module exists and DIR is the Makefile's VENV."""
    assert shutil.which(command.argv[0]) or command.argv[0].startswith(".venv/"), command.argv[0]
    assert util.find_spec("venv") is not None
    assert len(command.argv) == 4, f"{command}: expected python3 -m venv DIR"
    default = re.search(r"^VENV \?= (\S+)", _makefile(), re.M)
    assert default and default.group(1) == command.argv[3], (
        f"{command}: the Makefile's VENV is {default and default.group(1)!r}"
    )


PIP_OPTIONS = ("-e", "--editable", "-U", "--upgrade", "-q", "--quiet")


def check_pip_install(command: Command) -> None:
    """Every spec is this project (``.``, ``tf-bng``) with extras it declares.

    The extras come from the installed distribution's metadata (what pip
    reads). A line whose comment says it is what ``make`` does must match the
    Makefile's install recipe.
    """
    args = list(command.argv[4:] if command.argv[0] in PYTHONS else command.argv[2:])
    options = [a for a in args if a.startswith("-")]
    specs = [a for a in args if not a.startswith("-")]
    assert set(options) <= set(PIP_OPTIONS), f"{command}: options beyond {PIP_OPTIONS}"
    assert specs, f"{command}: installs nothing"
    with open(os.path.join(REPO, "pyproject.toml")) as f:
        assert re.search(r'^name = "tf-bng"$', f.read(), re.M)
    declared = set(metadata.metadata("tf-bng").get_all("Provides-Extra") or ())
    for spec in specs:
        match = re.fullmatch(r"(\.|tf-bng|tf_bng)(?:\[([\w,-]+)\])?", spec)
        assert match, f"{command}: {spec!r} is not this project ('.', 'tf-bng', with [extras])"
        extras = set(match.group(2).split(",")) if match.group(2) else set()
        assert extras <= declared, f"{command}: extras {sorted(extras - declared)} not declared"
    if "make" in command.comment:
        recipe = [line for line in _makefile().splitlines() if "pip install" in line]
        wanted = {shlex.quote(s) for s in specs} | set(specs)
        editable = bool({"-e", "--editable"} & set(options))
        assert any(
            any(s in line.split() for s in wanted) and (" -e " in line) == editable
            for line in recipe
        ), f"{command}: the Makefile installs {recipe}"


def check_tensorboard(command: Command) -> None:
    """A server that runs until stopped: only that the command exists."""
    assert util.find_spec("tensorboard") is not None, f"{command}: tensorboard not installed"


# --- runs ---------------------------------------------------------------------------------

TRAIN_BOUND = ("--config.train.steps=2",)  # a README run trains up to 100 epochs: 2 steps prove it
SEEDS_BOUND = {"--seeds": "--seeds=0,1", "--num_seeds": "--num_seeds=2"}
# The model shrunk through its own key, as test_configs does: tracing the README's 18 sigmoid
# layers is most of a 2-step run (~30 of ~45 CPU s), and the depth is not what a command line
# proves (test_binary_command_line_parses builds depth=18; test_configs trains every config).
# Not appended when the README line sets the key itself.
MODEL_BOUND = {"configs/mnist_mlp.py": ("--config.model.depth=2",)}


def bound_model(argv: Sequence[str]) -> list[str]:
    """The config file's size override(s) from :data:`MODEL_BOUND` (none for other files)."""
    config = _flag(argv, "config")
    if not config:
        return []
    overrides = MODEL_BOUND.get(config.split(":", 1)[0], ())
    return [o for o in overrides if _flag(argv, o[2:].split("=", 1)[0]) is None]


def bound_train(argv: Sequence[str]) -> list[str]:
    """Two steps, not the README's epochs (``train.steps`` > 0 overrides them); a 2-layer MLP."""
    return [*TRAIN_BOUND, *bound_model(argv)] if _flag(argv, "config") else []


def bound_seeds(argv: Sequence[str]) -> list[str]:
    """Two seeds of two steps each: the README's five seeds of 100 epochs take hours."""
    kind = "--num_seeds" if _flag(argv, "num_seeds") else "--seeds"
    return [*TRAIN_BOUND, *bound_model(argv), SEEDS_BOUND[kind]]


def _overrides(argv: Sequence[str]) -> dict[str, str]:
    out = {}
    for arg in argv:
        if arg.startswith("--config."):
            key, _, value = arg[len("--config.") :].partition("=")
            out[key] = value
    return out


def _assert_config_has(config: dict, overrides: dict[str, str], where: str) -> None:
    """The resolved config.json holds the command line's ``--config.*`` values."""
    for key, value in overrides.items():
        node = config
        for part in key.split("."):
            node = node[part]
        expected = {"true": True, "false": False}.get(value.lower(), value)
        assert str(node) == str(expected) or node == expected or _same_number(node, value), (
            f"{where}: config.json has {key}={node!r}, the command line {value!r}"
        )


def _same_number(node, value: str) -> bool:
    try:
        return float(node) == float(value)
    except (TypeError, ValueError):
        return False


def verify_train(command: Command, argv: Sequence[str], cwd: str, output: str) -> None:
    """A training run left its config (with the overrides), metrics and, if asked, its export."""
    if not _flag(argv, "config"):
        assert "usage:" in output, f"{command}: printed no usage"
        return
    workdir = os.path.join(cwd, _flag(argv, "workdir"))
    with open(os.path.join(workdir, "config.json")) as f:
        config = json.load(f)
    _assert_config_has(config, _overrides(argv), str(command))
    assert os.path.getsize(os.path.join(workdir, "metrics.jsonl")) > 0
    if config.get("export"):
        assert os.path.exists(os.path.join(workdir, "export", "saved_model.pb"))


def prepare_saved_model_cli(command: Command, cwd: str) -> None:
    """Write each ``--inputs KEY=FILE.npy``: three examples of the export's input signature.

    The shape and dtype are read off the SavedModel the earlier commands exported.
    """
    import numpy as np
    import tensorflow as tf

    argv = list(command.argv)
    directory = os.path.join(cwd, argv[argv.index("--dir") + 1])
    signature = tf.saved_model.load(directory).signatures[argv[argv.index("--signature_def") + 1]]
    specs = signature.structured_input_signature[1]
    for pair in argv[argv.index("--inputs") + 1].split(";"):
        key, path = pair.split("=", 1)
        spec = specs[key]
        shape = [3 if d is None else d for d in spec.shape.as_list()]
        values = np.random.RandomState(0).randint(0, 256, size=shape) / 255.0
        np.save(os.path.join(cwd, path), values.astype(spec.dtype.as_numpy_dtype))


def verify_saved_model_cli(command: Command, argv: Sequence[str], cwd: str, output: str) -> None:
    if "run" in argv:
        assert "Result for output key outputs" in output, f"{command}: {output[-2000:]}"


def verify_seeds(command: Command, argv: Sequence[str], cwd: str, output: str) -> None:
    """Every seed finished and the summary lists them."""
    with open(os.path.join(cwd, _flag(argv, "workdir"), "summary.json")) as f:
        summary = json.load(f)
    wanted = _flag(argv, "seeds")
    seeds = (
        [int(s) for s in wanted.split(",")]
        if wanted
        else list(range(int(_flag(argv, "num_seeds"))))
    )
    assert summary["seeds"] == seeds
    assert set(summary["exit_codes"].values()) == {0}, summary["exit_codes"]
    assert summary["summary"], "no metric summarized"


@dataclasses.dataclass(frozen=True)
class Rule:
    """How the test covers the commands that ``matches`` accepts."""

    name: str
    matches: Callable[[Sequence[str]], bool]
    why: str
    check: Callable[[Command], None] | None = None  # a rule without it runs the command
    spawns: bool = False  # the check starts a process: marked slow
    bound: Callable[[Sequence[str]], list[str]] = lambda argv: []
    prepare: Callable[[Command, str], None] = lambda command, cwd: None
    verify: Callable[[Command, Sequence[str], str, str], None] = lambda *unused: None

    @property
    def runs(self) -> bool:
        return self.check is None


RULES = (
    Rule(
        "make",
        lambda a: a[0] == "make",
        "make test/demo/report would run the suite inside itself or for minutes, and install: "
        "the target must exist (make -n)",
        check=check_make,
        spawns=True,
    ),
    Rule(
        "venv",
        lambda a: a[0] in PYTHONS and a[1:3] == ("-m", "venv"),
        "creates the environment the tests run in",
        check=check_venv,
    ),
    Rule(
        "pip install",
        _is_pip_install,
        "installs packages: the spec and its extras must exist",
        check=check_pip_install,
    ),
    Rule(
        "tensorboard",
        lambda a: a[0] in ("tensorboard", ".venv/bin/tensorboard"),
        "a server that runs until stopped: the command must exist",
        check=check_tensorboard,
    ),
    Rule(
        "train",
        _is_train,
        "runs with the README's config, --config.train.steps=2 (and a 2-layer MLP) appended",
        bound=bound_train,
        verify=verify_train,
    ),
    Rule(
        "seeds",
        _is_seeds,
        "runs with two seeds of two steps appended (--seeds=0,1 --config.train.steps=2)"
        " and a 2-layer MLP",
        bound=bound_seeds,
        verify=verify_seeds,
    ),
    Rule(
        "saved_model_cli",
        lambda a: a[0] in ("saved_model_cli", ".venv/bin/saved_model_cli"),
        "runs on the export an earlier command wrote, with the inputs file it names",
        prepare=prepare_saved_model_cli,
        verify=verify_saved_model_cli,
    ),
)


def rules_for(command: Command) -> list[Rule]:
    return [rule for rule in RULES if rule.matches(command.argv)]


def rule_for(command: Command) -> Rule:
    """The one rule of ``command``; AssertionError naming the command when none or several."""
    found = rules_for(command)
    assert len(found) == 1, (
        f"{command}: matched by {[r.name for r in found]}; every README shell command needs "
        f"exactly one rule in tests/application/readme_commands.py (rules: "
        f"{', '.join(r.name for r in RULES)})"
    )
    return found[0]


def binary_arguments(command: Command) -> list[str] | None:
    """The train arguments of a train or seeds command, seeds-only flags dropped (else None)."""
    if not (_is_train(command.argv) or _is_seeds(command.argv)):
        return None
    seeds_only = ("--seeds=", "--num_seeds=", "--jobs=", "--metrics=")
    return [a for a in _binary_argv(command.argv) if not a.startswith(seeds_only)]


# --- where the run commands run --------------------------------------------------------------


def make_checkout(root: str) -> str:
    """A fresh directory that looks like the repository root: its entries as symlinks.

    ``.venv`` points at the environment running the tests, so ``.venv/bin/...``
    in the README runs this interpreter; what the commands write (``runs/``,
    ``sample.npy``) stays in the new directory.
    """
    checkout = os.path.join(root, "checkout")
    os.makedirs(checkout)
    for name in os.listdir(REPO):
        if name.startswith(".") or name in ("runs", "tmp", "build"):
            continue
        os.symlink(os.path.join(REPO, name), os.path.join(checkout, name))
    os.symlink(sys.prefix, os.path.join(checkout, ".venv"))
    assert os.path.exists(os.path.join(checkout, ".venv", "bin", "python")), sys.prefix
    return checkout


def run_environment(root: str) -> dict:
    """The tests' environment (TFDS at an empty directory: offline), HOME inside ``root``."""
    env = {k: v for k, v in os.environ.items() if k not in ("MPLCONFIGDIR", "KERAS_HOME")}
    home = os.path.join(root, "home")
    os.makedirs(home, exist_ok=True)
    bin_dir = os.path.join(sys.prefix, "bin")
    env.update(
        HOME=home,
        PATH=os.pathsep.join([bin_dir, env.get("PATH", "")]),
        TF_CPP_MIN_LOG_LEVEL="2",
        NO_GCE_CHECK="true",
    )
    assert env.get("TFDS_DATA_DIR"), "conftest points TFDS at an empty directory"
    return env


def run(command: Command, rule: Rule, cwd: str, env: dict) -> subprocess.CompletedProcess:
    """Run ``command`` as written plus the rule's bound.

    Returns:
        The finished process: ``args`` is the command line run (bound included),
        ``stdout`` its stdout and stderr together.
    """
    argv = [*command.argv, *rule.bound(command.argv)]
    if shutil.which(argv[0], path=env["PATH"]) is None and "/" not in argv[0]:
        raise AssertionError(f"{command}: {argv[0]} is not on PATH")
    rule.prepare(command, cwd)
    return subprocess.run(
        argv,
        cwd=cwd,
        env={**env, **dict(command.env)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=RUN_TIMEOUT,
    )
