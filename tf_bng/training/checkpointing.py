"""Checkpoints of a run: model, optimizer, step counter, loss scale.

The input position is the step counter: a distributed iterator is not
trackable (``tf.train.Checkpoint`` rejects ``DistributedIterator``; only the
plain ``OwnedIterator`` is), and saving a shuffle buffer would copy it into
every checkpoint. The loop instead rebuilds the seeded pipeline and skips
the batches already consumed (see :mod:`tf_bng.training.input_pipeline`).

In a multi-worker run every worker must save (variables may need
collectives); only the chief writes to ``workdir``, the others write to a
scratch directory that is deleted right after (TF's documented pattern).
"""

from __future__ import annotations

import os
from typing import Optional

import tensorflow as tf
from absl import logging

from tf_bng.training import runtime

__all__ = ["write_path", "remove_scratch", "Checkpointer"]


def write_path(path: str, strategy: Optional[tf.distribute.Strategy] = None) -> str:
    """``path`` for the chief, a per-worker scratch path next to it for the others."""
    if runtime.is_chief(strategy):
        return path
    parent, base = os.path.split(os.path.normpath(path))
    return os.path.join(parent, f".scratch_worker_{runtime.task_id(strategy)}", base)


def remove_scratch(path: str, strategy: Optional[tf.distribute.Strategy] = None) -> None:
    """Delete what a non-chief wrote to its :func:`write_path`."""
    if not runtime.is_chief(strategy):
        scratch = os.path.dirname(write_path(path, strategy))
        if tf.io.gfile.exists(scratch):
            tf.io.gfile.rmtree(scratch)


class Checkpointer:
    """A ``tf.train.CheckpointManager`` over ``directory`` with the chief/worker split."""

    def __init__(
        self,
        directory: str,
        *,
        strategy: Optional[tf.distribute.Strategy] = None,
        max_to_keep: int = 3,
        **trackables,
    ):
        self.directory = directory
        self.strategy = strategy
        self.checkpoint = tf.train.Checkpoint(**trackables)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint,
            directory=write_path(directory, strategy),
            max_to_keep=max_to_keep if runtime.is_chief(strategy) else 1,
        )

    def latest(self) -> Optional[str]:
        """The newest checkpoint of the chief's directory (every worker restores it)."""
        return tf.train.latest_checkpoint(self.directory)

    def restore_latest(self) -> Optional[str]:
        path = self.latest()
        if path is not None:
            self.checkpoint.restore(path).assert_existing_objects_matched()
            logging.info("Restored %s", path)
        return path

    def save(self, step: int) -> str:
        path = self.manager.save(checkpoint_number=int(step))
        remove_scratch(self.directory, self.strategy)
        return path
