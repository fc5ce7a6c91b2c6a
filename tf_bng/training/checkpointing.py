"""Checkpoints of a run that survive kills, damage and NaN: model, optimizer, counters.

Layout of ``directory``: ``ckpt-<step>.index`` / ``.data-*`` and the
``checkpoint`` state file that ``tf.train.latest_checkpoint`` reads.

Why not ``tf.train.CheckpointManager``: it updates the state file right
after writing and deletes the oldest checkpoint beyond ``max_to_keep``
without reading the new one back, so a damaged new checkpoint can push out
the last good one. Here a save (1) refuses state holding NaN/Inf, (2) writes
the files, (3) reads every tensor back (TensorFlow checks each tensor's
CRC), (4) only then points the state file at it, atomically (temp file +
rename), and (5) only then deletes checkpoints beyond ``max_to_keep``. A
kill at any moment leaves the state file naming a complete checkpoint; the
leftovers of an interrupted write are overwritten by the next save. A save
that fails (disk full: ``ResourceExhaustedError``, any other write error)
removes what it wrote (``ckpt-<step>_temp/``, partial files) and raises
:class:`CheckpointError`; earlier checkpoints are untouched.

A checkpoint written completely but killed before the state file named it
(an orphan) is still a candidate on restore; once a run has restored its
newest intact checkpoint, the chief lists every checkpoint on disk in the
state file and prunes the oldest beyond ``max_to_keep`` (never the one it
restored).

On restore the newest checkpoint that reads back completely wins; a damaged
one (truncated file, bad checksum) is logged and moved to
``directory/damaged/``, never deleted.

The input position is the step counter: a distributed iterator is not
trackable (``tf.train.Checkpoint`` rejects ``DistributedIterator``; only the
plain ``OwnedIterator`` is), and saving a shuffle buffer would copy it into
every checkpoint. The loop instead rebuilds the seeded pipeline and skips
the batches already consumed (see :mod:`tf_bng.training.input_pipeline`).

In a multi-worker run every worker must save (variables may need
collectives); only the chief writes to ``directory``, the others write to a
scratch directory that is deleted right after (TF's documented pattern).
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterable
from typing import Any

import tensorflow as tf
from absl import logging

from tf_bng.errors import CheckpointError
from tf_bng.step.guard import is_float_variable
from tf_bng.training import runtime
from tf_bng.training.files import atomic_write_text

__all__ = [
    "write_path",
    "remove_scratch",
    "Checkpointer",
    "checkpoint_step",
    "verify_checkpoint",
    "state_variables",
    "DAMAGED_DIR",
]

PREFIX = "ckpt"
STATE_FILE = "checkpoint"
DAMAGED_DIR = "damaged"
_STEP = re.compile(rf"{PREFIX}-(\d+)$")
# What reading a damaged checkpoint raises: DataLossError (bad checksum),
# NotFoundError (missing shard), IndexError (truncated data file, from the
# pybind reader), ...: any failure to read back counts as damage.
_READ_ERRORS = (tf.errors.OpError, OSError, ValueError, RuntimeError, IndexError)


def write_path(path: str, strategy: tf.distribute.Strategy | None = None) -> str:
    """``path`` for the chief, a per-worker scratch path next to it for the others.

    Every worker of a multi-worker run must write (saving may run collectives), but only
    the chief's files may land in ``path``.

    Args:
        path: Where the chief writes.
        strategy: The run's strategy; None (or a single-worker strategy) is the chief.

    Returns:
        ``path`` itself on the chief, else ``<parent>/.scratch_worker_<task id>/<name>``.
    """
    if runtime.is_chief(strategy):
        return path
    parent, base = os.path.split(os.path.normpath(path))
    return os.path.join(parent, f".scratch_worker_{runtime.task_id(strategy)}", base)


def remove_scratch(path: str, strategy: tf.distribute.Strategy | None = None) -> None:
    """Delete what a non-chief wrote to its :func:`write_path`; nothing on the chief.

    Args:
        path: The path given to :func:`write_path`.
        strategy: The run's strategy; None is the chief.
    """
    if not runtime.is_chief(strategy):
        scratch = os.path.dirname(write_path(path, strategy))
        if tf.io.gfile.exists(scratch):
            tf.io.gfile.rmtree(scratch)


def checkpoint_step(prefix: str) -> int | None:
    """The step in ``.../ckpt-<step>``, or None for another name.

    Args:
        prefix: A checkpoint prefix (a path without the ``.index`` suffix).

    Returns:
        The step, or None if the base name is not ``ckpt-<step>``.
    """
    match = _STEP.search(os.path.basename(prefix))
    return int(match.group(1)) if match else None


def verify_checkpoint(prefix: str) -> str | None:
    """None if every tensor of ``prefix`` reads back intact, else why not (one line).

    TensorFlow checks each tensor's CRC on read, so reading everything is what tells a
    complete checkpoint from a truncated or corrupted one.

    Args:
        prefix: The checkpoint prefix (``.../ckpt-<step>``).

    Returns:
        None when intact, else ``"<ErrorType>: <first line of the message>"``.
    """
    try:
        reader = tf.train.load_checkpoint(prefix)
        for key in reader.get_variable_to_shape_map():
            reader.get_tensor(key)
    except _READ_ERRORS as e:
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        return f"{type(e).__name__}: {lines[0] if lines else ''}"
    return None


def state_variables(trackables: Iterable[Any]) -> list:
    """The distinct variables of models, optimizers, modules, lists and bare variables.

    Args:
        trackables: What a :class:`Checkpointer` saves: objects with ``.variables``,
            lists or tuples of variables, or variables.

    Returns:
        Each variable once (by identity), in first-seen order.
    """
    found: dict[int, Any] = {}
    for item in trackables:
        if isinstance(item, (list, tuple)):
            variables = list(item)
        elif hasattr(item, "variables") and not isinstance(item, tf.Variable):
            variables = list(item.variables)
        else:
            variables = [item]
        for v in variables:
            found.setdefault(id(v), v)
    return list(found.values())


def _name(variable: Any) -> str:
    return str(getattr(variable, "path", None) or variable.name)


def _files_of(prefix: str) -> list[str]:
    return tf.io.gfile.glob(prefix + ".*")


class Checkpointer:
    """Saves and restores ``trackables`` in ``directory`` (see the module docstring).

    Args:
        directory: The checkpoint directory (created on the first save).
        strategy: The run's strategy: only its chief writes to ``directory``; None for
            one process.
        max_to_keep: How many verified checkpoints to keep; older ones are deleted only
            after a newer one has read back intact.
        **trackables: What to save, by name (``model=...``, ``optimizer=...``, step
            counters), as for ``tf.train.Checkpoint``.

    Raises:
        ValueError: If ``max_to_keep`` is below 1.
    """

    def __init__(
        self,
        directory: str,
        *,
        strategy: tf.distribute.Strategy | None = None,
        max_to_keep: int = 3,
        **trackables,
    ):
        if max_to_keep < 1:
            raise ValueError(f"max_to_keep must be >= 1, got {max_to_keep}.")
        self.directory = directory
        self.strategy = strategy
        self.max_to_keep = int(max_to_keep)
        self.is_chief = runtime.is_chief(strategy)
        self.checkpoint = tf.train.Checkpoint(**trackables)
        # ``write`` (unlike ``save``) does not create the save counter, and a
        # restore would then find it unmatched: create it up front.
        _ = self.checkpoint.save_counter
        self._float_variables = [
            v for v in state_variables(trackables.values()) if is_float_variable(v)
        ]
        self._all_finite = tf.function(self._compute_all_finite)

    # -- listing ------------------------------------------------------------------
    def _listed(self) -> list[str]:
        """The state file's checkpoints, oldest first ([] if absent or unreadable)."""
        try:
            state = tf.train.get_checkpoint_state(self.directory)
        except _READ_ERRORS as e:
            logging.warning("Ignoring the unreadable checkpoint state file: %s", e)
            return []
        if state is None:
            return []
        paths = list(state.all_model_checkpoint_paths)
        if state.model_checkpoint_path and state.model_checkpoint_path not in paths:
            paths.append(state.model_checkpoint_path)
        return paths

    def candidates(self) -> list[str]:
        """Every checkpoint prefix of ``directory``, newest step first.

        The state file's list plus any ``ckpt-<step>.index`` on disk (a write
        that finished but was killed before the state file was updated).
        """
        prefixes = {os.path.join(self.directory, os.path.basename(p)) for p in self._listed()}
        for index in tf.io.gfile.glob(os.path.join(self.directory, f"{PREFIX}-*.index")):
            prefixes.add(index[: -len(".index")])
        numbered = [(checkpoint_step(p), p) for p in prefixes if checkpoint_step(p) is not None]
        return [p for _, p in sorted(numbered, reverse=True)]

    def latest(self) -> str | None:
        """The state file's newest checkpoint (every worker restores the chief's)."""
        return tf.train.latest_checkpoint(self.directory)

    # -- restore ------------------------------------------------------------------
    def restore_latest(self) -> str | None:
        """Restore the newest intact checkpoint; None when there is none (a fresh run).

        Newer damaged ones are moved aside (by the chief) with a warning.
        When checkpoints exist but none is intact, nothing is moved and
        :class:`CheckpointError` is raised: starting over is the user's call.
        """
        damaged: list[tuple[str, str]] = []
        for prefix in self.candidates():
            problem = verify_checkpoint(prefix)
            if problem is not None:
                logging.warning("Checkpoint %s is damaged: %s", prefix, problem)
                damaged.append((prefix, problem))
                continue
            for bad, _ in damaged:
                self._move_aside(bad)
            if damaged:
                logging.warning("Falling back to %s.", prefix)
            self._restore(prefix)
            self._adopt_orphans(prefix)
            return prefix
        if damaged:
            raise CheckpointError(
                f"No checkpoint in {self.directory} reads back intact ({damaged[0][0]}: "
                f"{damaged[0][1]}); move the workdir away to start over."
            )
        return None

    def _restore(self, prefix: str) -> None:
        try:
            self.checkpoint.restore(prefix).assert_existing_objects_matched()
        except (AssertionError, ValueError) as e:
            raise CheckpointError(
                f"{prefix} does not match this run's model or optimizer (was the workdir used "
                f"with another config?): {str(e).splitlines()[0]}"
            ) from e
        logging.info("Restored %s", prefix)

    def _adopt_orphans(self, restored: str) -> None:
        """List every checkpoint on disk up to ``restored`` (newest), prune beyond max_to_keep.

        An orphan (written, killed before the state file named it) would
        otherwise stay on disk for ever. ``restored`` has just read back
        intact, so it stays and the state file names it.
        """
        if not self.is_chief:
            return
        newest = checkpoint_step(restored)
        older = [p for p in self.candidates() if (checkpoint_step(p) or 0) < newest]
        listed = [os.path.basename(p) for p in reversed(older)] + [os.path.basename(restored)]
        before = [os.path.basename(p) for p in self._listed()]
        orphans = sorted(set(listed) - set(before), key=checkpoint_step)
        if orphans:
            logging.info("Found checkpoints the state file did not list: %s.", ", ".join(orphans))
        if listed != before:
            self._write_state(listed)
        self._prune(listed)

    def _move_aside(self, prefix: str) -> None:
        if not self.is_chief:
            return
        damaged = os.path.join(self.directory, DAMAGED_DIR)
        tf.io.gfile.makedirs(damaged)
        for path in _files_of(prefix):
            target = os.path.join(damaged, os.path.basename(path))
            suffix = 1
            while tf.io.gfile.exists(target):
                target = os.path.join(damaged, f"{os.path.basename(path)}.{suffix}")
                suffix += 1
            tf.io.gfile.rename(path, target)
        kept = [p for p in self._listed() if os.path.basename(p) != os.path.basename(prefix)]
        self._write_state(kept)
        logging.warning("Moved the files of %s to %s.", prefix, damaged)

    # -- save ---------------------------------------------------------------------
    def _compute_all_finite(self) -> tf.Tensor:
        checks = [
            tf.reduce_all(tf.math.is_finite(tf.convert_to_tensor(v))) for v in self._float_variables
        ]
        return tf.reduce_all(tf.stack(checks)) if checks else tf.constant(True)

    def _non_finite_names(self) -> list[str]:
        return [
            _name(v)
            for v in self._float_variables
            if not bool(tf.reduce_all(tf.math.is_finite(tf.convert_to_tensor(v))))
        ]

    def save(self, step: int) -> str:
        """Write ``ckpt-<step>``, verify it, then name it in the state file and prune.

        Args:
            step: The global step the checkpoint holds; it names the files.

        Returns:
            The prefix written (on a non-chief worker, its deleted scratch prefix).

        Raises:
            CheckpointError: Writing nothing, if any state holds NaN or Inf (on any
                worker); or, having removed the partial files, if the write fails
                (disk full, any other write error) or does not read back.
        """
        bad = runtime.any_worker(self.strategy, not bool(self._all_finite()))
        if bad:
            names = self._non_finite_names() or ["(on another worker)"]
            raise CheckpointError(
                f"Not saving step {step}: {', '.join(names[:5])} hold NaN or Inf; the last good "
                f"checkpoint is {self.latest()}."
            )
        base = f"{PREFIX}-{int(step)}"
        prefix = os.path.join(write_path(self.directory, self.strategy), base)
        try:
            tf.io.gfile.makedirs(os.path.dirname(prefix))
            self.checkpoint.write(prefix)
        except (tf.errors.OpError, OSError) as e:
            self._remove_partial(prefix)
            raise self._save_failed(step, e) from None
        if not self.is_chief:
            remove_scratch(self.directory, self.strategy)
            return prefix
        problem = verify_checkpoint(prefix)
        if problem is not None:
            raise CheckpointError(f"{prefix} did not read back after writing it: {problem}")
        older = [p for p in self.candidates() if (checkpoint_step(p) or 0) < int(step)]
        listed = [os.path.basename(p) for p in reversed(older)] + [base]
        try:
            self._write_state(listed)
        except (tf.errors.OpError, OSError) as e:
            # The new checkpoint is complete: the next start finds it on disk.
            raise self._save_failed(step, e) from None
        self._prune(listed)
        return prefix

    def _remove_partial(self, prefix: str) -> None:
        """Delete what an interrupted ``write(prefix)`` left: ``prefix_temp/`` and ``prefix.*``."""
        leftovers = [prefix + "_temp"] + _files_of(prefix)
        for path in leftovers:
            try:
                if tf.io.gfile.isdir(path):
                    tf.io.gfile.rmtree(path)
                elif tf.io.gfile.exists(path):
                    tf.io.gfile.remove(path)
            except (tf.errors.OpError, OSError) as e:  # keep the first error the one reported
                logging.warning("Could not remove %s: %s", path, e)

    def _save_failed(self, step: int, error: BaseException) -> CheckpointError:
        full = isinstance(error, tf.errors.ResourceExhaustedError) or (
            isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)
        )
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        detail = lines[0] if lines else type(error).__name__
        latest = self.latest()
        where = f"the last good checkpoint is {latest}" if latest else "no checkpoint was saved yet"
        what = "the disk is full" if full else f"{type(error).__name__}: {detail}"
        return CheckpointError(
            f"saving the checkpoint of step {int(step)} in {self.directory} failed ({what}); "
            f"removed the partial files, {where}. "
            + ("Free some space, then " if full else "Fix it, then ")
            + "rerun the same command to resume."
        )

    def _write_state(self, prefixes: list[str]) -> None:
        """Point the state file at ``prefixes`` (newest last), atomically."""
        names = [os.path.basename(p) for p in prefixes]
        path = os.path.join(self.directory, STATE_FILE)
        if not names:
            if tf.io.gfile.exists(path):
                tf.io.gfile.remove(path)
            return
        lines = [f'model_checkpoint_path: "{names[-1]}"']
        lines += [f'all_model_checkpoint_paths: "{name}"' for name in names]
        atomic_write_text(path, "\n".join(lines) + "\n")

    def _prune(self, listed: list[str]) -> None:
        """Delete the oldest listed checkpoints beyond ``max_to_keep`` (the newest is verified)."""
        excess = listed[: -self.max_to_keep]
        if not excess:
            return
        self._write_state(listed[-self.max_to_keep :])
        for name in excess:
            for path in _files_of(os.path.join(self.directory, os.path.basename(name))):
                tf.io.gfile.remove(path)
