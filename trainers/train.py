"""Train one experiment: ``python -m trainers.train --config=configs/<exp>.py[:arg] --workdir=DIR``.

Any config key can be overridden with ``--config.<section>.<key>=value``
(the config is locked: an unknown key is an error). Running again with the
same ``--workdir`` resumes from the last checkpoint. Installed as the
console script ``tf-bng-train``.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file, e.g. configs/mnist_mlp.py:depth=18.", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and exports.")
flags.mark_flags_as_required(["config", "workdir"])


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


def _parse_flags(argv: list[str]) -> list[str]:
    try:
        return flags.FLAGS(argv)
    except (flags.Error, AttributeError, KeyError, ValueError, TypeError) as e:
        sys.exit(f"error: {describe_flag_error(e, argv)}")


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    from tf_bng.data import DataUnavailableError
    from tf_bng.training import ConfigError, train_and_evaluate, validate_config

    config = _CONFIG.value
    try:
        validate_config(config)
        results = train_and_evaluate(config, _WORKDIR.value)
    except (ConfigError, DataUnavailableError) as e:
        sys.exit(f"error: {e}")
    logging.info("Final metrics: %s", results)


def run() -> None:
    """Entry point of the ``tf-bng-train`` console script."""
    app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
    run()
