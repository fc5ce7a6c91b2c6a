"""Train one experiment: ``python -m trainers.train --config=configs/<exp>.py[:arg] --workdir=DIR``.

``--config`` takes a config file's path or the name of a shipped config
(``--config=mnist_mlp:depth=18``), so the installed console script
``tf-bng-train`` works from any directory. Any config key can be overridden
with ``--config.<section>.<key>=value`` (the config is locked: an unknown
key is an error). Running again with the same ``--workdir`` resumes from
the last checkpoint.

Exit codes (``tf_bng.errors.EXIT_CODES``): 0 done; 1 a bad command line;
2 a bad config (a value, a config file or name that does not exist),
workdir or replica count, or data not available offline; 3 bad data;
4 diverged (``train.max_bad_steps`` non-finite steps in a row); 5 a
checkpoint problem (disk full during a save included); 6 a retryable
cluster fault (a worker did not join within ``runtime.startup_timeout``, a
peer was lost: rerun all workers); 128 + signal (143 SIGTERM, 130 SIGINT) interrupted after saving a
checkpoint. Every one of them prints a single line to stderr.
"""

from __future__ import annotations

import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

import importlib.util  # noqa: E402

# The binary's needs beyond the library's (pyproject's `experiments` extra).
EXPERIMENT_MODULES = ("ml_collections", "tensorflow_datasets", "mlxtend", "matplotlib")


def missing_extra() -> str | None:
    """The one line to print when a module of the ``experiments`` extra is missing."""
    missing = [m for m in EXPERIMENT_MODULES if importlib.util.find_spec(m) is None]
    if not missing:
        return None
    names = ", ".join(missing)
    return f"error: the training binary needs {names}: pip install 'tf-bng[experiments]'"


_MISSING = missing_extra()
if _MISSING:  # before the imports that would fail with a traceback
    print(_MISSING, file=sys.stderr)
    sys.exit(2)

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from .shipped_configs import (  # noqa: E402
    UnknownConfigError,
    resolve_config_argv,
    shipped_config_names,
)

_FLAG_ERRORS = (flags.Error, AttributeError, KeyError, ValueError, TypeError)


def define_flags(flag_values: flags.FlagValues = flags.FLAGS, argv=None):
    """``--config`` and ``--workdir`` on ``flag_values``; returns their holders.

    ``argv`` (default ``sys.argv``) is where ml_collections looks for the
    ``--config.*`` overrides to define.
    """
    config = config_flags.DEFINE_config_file(
        "config",
        None,
        "A shipped config's name or a config file's path, then :key=value,... variants. "
        f"Shipped: {', '.join(shipped_config_names())}. Example: mnist_mlp:depth=18.",
        flag_values=flag_values,
        lock_config=True,
        sys_argv=argv,
    )
    workdir = flags.DEFINE_string(
        "workdir", None, "Directory for checkpoints, logs and exports.", flag_values=flag_values
    )
    flags.mark_flags_as_required(["config", "workdir"], flag_values=flag_values)
    return config, workdir


_CONFIG, _WORKDIR = define_flags()


class CommandLineError(ValueError):
    """A flag the binary cannot parse; the message is the one line it prints."""


def _innermost_message(error: BaseException) -> str:
    while error.args and isinstance(error.args[0], BaseException):
        error = error.args[0]
    return str(error.args[0]) if error.args else type(error).__name__


def describe_flag_error(error: BaseException, argv: list[str]) -> str:
    """One line for a command-line error (ml_collections raises with tracebacks inside)."""
    if isinstance(error, (AttributeError, KeyError)):
        # An override of a key the locked config lacks: "'nme'\nDid you mean "name" ...?"
        key, _, hint = _innermost_message(error).partition("\n")
        key = key.strip("'\"")
        names = [a.split("=", 1)[0] for a in argv if a.startswith("--config.")]
        flag = next((n for n in names if n.rsplit(".", 1)[-1] == key), key)
        return f"unknown config key {flag}" + (f" ({hint.strip()})" if hint.strip() else "")
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def parse_config(argv: list[str]):
    """``(config, workdir)`` from a command line, on fresh flags (tests, notebooks).

    Raises :class:`CommandLineError` with the line the binary would print.
    """
    argv = resolve_config_argv(argv)
    flag_values = flags.FlagValues()
    config, workdir = define_flags(flag_values, argv)
    try:
        flag_values(argv)
    except _FLAG_ERRORS as e:
        raise CommandLineError(describe_flag_error(e, argv)) from None
    return config.value, workdir.value


def _workdir_in(argv: list[str]):
    """The ``--workdir`` value of a command line, before absl parses it."""
    for i, item in enumerate(argv):
        if item.startswith("--workdir="):
            return item.split("=", 1)[1]
        if item == "--workdir" and i + 1 < len(argv):
            return argv[i + 1]
    return None


HELP_EXAMPLE = (
    "tf-bng-train --config=mnist_mlp:depth=6,optimizer=adam,transform=ng --workdir=runs/x "
    "--config.train.epochs=2"
)


def help_text() -> str:
    """What ``--help`` prints: usage, the flags, the shipped configs, an example."""
    return "\n".join(
        [
            "usage: tf-bng-train --config=NAME[:key=value,...] --workdir=DIR "
            "[--config.<section>.<key>=value ...]",
            "",
            "Train one experiment (or resume it: rerun the same command).",
            "",
            "flags:",
            "  --config   a shipped config's name or a config file's path, then",
            "             :key=value,... variants (optimizer, transform, depth, dataset, ...)",
            "  --config.<section>.<key>=value   override one key (data, model, optimizer,",
            "             schedule, transform, train, runtime, export)",
            "  --workdir  directory for config.json, metrics.jsonl, summaries/,",
            "             checkpoints/ and export/",
            "",
            f"shipped configs: {', '.join(shipped_config_names())}",
            "",
            f"example: {HELP_EXAMPLE}",
            "",
            "exit codes: 0 done, 1 command line, 2 config/environment, 3 data, 4 diverged,",
            "5 checkpoint, 6 retryable cluster fault (rerun all workers), 128+signal",
            "interrupted. --helpfull lists absl's own flags.",
        ]
    )


def _parse_flags(argv: list[str]) -> list[str]:
    if any(a in ("--help", "-h", "-?", "--helpshort") for a in argv[1:]):
        print(help_text())
        sys.exit(0)
    # Loading a config file imports TensorFlow and Keras (configs take their
    # defaults from the library), which write caches under HOME: point them
    # into the workdir first.
    workdir = _workdir_in(argv)
    if workdir:
        keep_files_in_workdir(workdir)
    try:
        argv = resolve_config_argv(argv)
    except UnknownConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    try:
        return flags.FLAGS(argv)
    except _FLAG_ERRORS as e:
        sys.exit(f"error: {describe_flag_error(e, argv)}")


def keep_files_in_workdir(workdir: str) -> None:
    """Point Keras's, matplotlib's and the temp files of this process into ``workdir/.cache``.

    Importing Keras writes ``~/.keras/keras.json`` and builds matplotlib's
    font cache under ``~/.cache`` when they are missing, and AutoGraph writes
    one temp file per converted function (removed at exit, so a killed run
    leaves them behind); a run must write nothing outside its workdir.
    Settings the user made (``KERAS_HOME``, ``MPLCONFIGDIR``, an existing
    ``~/.keras/keras.json``) win; temp files always go to
    ``workdir/.cache/tmp``. Must run before Keras is imported.
    """
    if "://" in workdir:  # a remote workdir cannot hold local files
        return
    cache = os.path.join(os.path.abspath(workdir), ".cache")
    temporary = os.path.join(cache, "tmp")
    try:
        os.makedirs(temporary, exist_ok=True)
        # A read-only workdir of an earlier run has these directories already:
        # caches pointed there would fail on import (matplotlib's, Keras's).
        with tempfile.NamedTemporaryFile(dir=temporary):
            pass
    except OSError:
        return  # the workdir check reports it
    os.environ["TMPDIR"] = temporary
    tempfile.tempdir = temporary
    os.environ.setdefault("MPLCONFIGDIR", os.path.join(cache, "matplotlib"))
    user_keras = os.path.join(os.path.expanduser("~"), ".keras", "keras.json")
    if "KERAS_HOME" not in os.environ and not os.path.exists(user_keras):
        os.environ["KERAS_HOME"] = os.path.join(cache, "keras")


def run_experiment(config, workdir: str) -> int:
    """Train (or resume) ``config`` in ``workdir``; returns the exit code.

    A run that refuses to start or stops early prints one line to stderr
    (``error: ...`` or ``interrupted by ...``); other exceptions are bugs and
    propagate with their traceback.
    """
    keep_files_in_workdir(workdir)
    from tf_bng.errors import RunError, TrainingInterrupted

    from .experiment import train_and_evaluate

    try:
        results = train_and_evaluate(config, workdir)
    except TrainingInterrupted as e:
        print(str(e), file=sys.stderr)
        return e.exit_code
    except RunError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    logging.info("Final metrics: %s", results)
    return 0


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    code = run_experiment(_CONFIG.value, _WORKDIR.value)
    if code:
        sys.exit(code)


def run() -> None:
    """Entry point of the ``tf-bng-train`` console script."""
    app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
    run()
