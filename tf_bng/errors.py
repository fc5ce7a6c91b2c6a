"""The one error hierarchy: the ways a run stops on purpose, each with a one-line message.

Every error tf_bng raises on purpose for a run (bad settings, data absent or
malformed, divergence, checkpoints, signals) is a :class:`RunError`; a
program prints ``error: <message>`` (or the interruption notice) and exits
with :attr:`RunError.exit_code`. Anything else is a bug and keeps its
traceback. Argument errors of library constructors stay ``ValueError`` /
``TypeError`` as Python code expects.
"""

from __future__ import annotations

__all__ = [
    "RunError",
    "ConfigError",
    "DataError",
    "DataUnavailableError",
    "TrainingDiverged",
    "CheckpointError",
    "ClusterError",
    "TrainingInterrupted",
    "EXIT_CODES",
    "one_line",
]

#: What each exit code of the training binary means (one thing each). README's table is this one.
EXIT_CODES = {
    0: "done",
    1: "bad command line (unknown flag or config key, unparsable value)",
    2: "bad config or environment: a value, a config file or name that does not exist, an "
    "unwritable workdir, a replica count, data not available offline",
    3: "bad data (shapes, labels out of range, NaN inputs in the first batches)",
    4: "diverged: train.max_bad_steps non-finite steps in a row",
    5: "checkpoint fault: disk full or write error during a save, no intact checkpoint, a "
    "checkpoint of another config",
    6: "retryable cluster fault: a worker did not join within runtime.startup_timeout, or a "
    "peer was lost during training; rerun all workers to resume",
    130: "interrupted by SIGINT after saving a checkpoint",
    143: "interrupted by SIGTERM after saving a checkpoint",
}


def one_line(error: BaseException) -> str:
    """The message of ``error`` with its lines joined (a message must fit one line).

    Args:
        error: Any exception.

    Returns:
        Its non-blank message lines, stripped and joined by spaces; the exception's type
        name if the message is empty.
    """
    text = " ".join(part.strip() for part in str(error).splitlines() if part.strip())
    return text or type(error).__name__


class RunError(Exception):
    """A run refused to start or stopped for a reason the user can act on."""

    exit_code = 1

    def __str__(self) -> str:
        return one_line(Exception(*self.args)) if self.args else type(self).__name__


class ConfigError(RunError, ValueError):
    """An invalid config value or environment (workdir, replicas); names the key and the choices."""

    exit_code = 2


class DataUnavailableError(RunError, RuntimeError):
    """The data is not on this machine; the message says what to fetch and where to put it."""

    exit_code = 2


class DataError(RunError, ValueError):
    """The data does not fit the model: wrong shapes, labels out of range, NaN inputs."""

    exit_code = 3


class TrainingDiverged(RunError, RuntimeError):
    """Too many consecutive steps had a non-finite loss or gradient."""

    exit_code = 4


class CheckpointError(RunError, RuntimeError):
    """No usable checkpoint, a checkpoint of another config, or state that must not be saved."""

    exit_code = 5


class ClusterError(RunError, RuntimeError):
    """A retryable multi-worker fault: a worker never joined, or a peer was lost mid-run.

    Nothing is wrong with the config or the data: rerunning every worker
    resumes from the last good checkpoint. A scheduler may retry on this
    code (6) and on no other.
    """

    exit_code = 6


class TrainingInterrupted(RunError):
    """SIGTERM or SIGINT: the state was saved at ``step``; the same command resumes.

    The exit code is the shell's convention for a death by that signal
    (128 + signal number: 143 for SIGTERM, 130 for SIGINT).

    Args:
        message: What the program prints (where the state was saved, how to resume).
        signum: The signal received; sets :attr:`exit_code`.
        step: The step of the checkpoint just saved.
    """

    def __init__(self, message: str, *, signum: int, step: int):
        super().__init__(message)
        self.signum = int(signum)
        self.step = int(step)
        self.exit_code = 128 + self.signum
