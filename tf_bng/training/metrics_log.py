"""What a run reports: ``metrics.jsonl`` lines and TensorBoard scalars.

A run that resumes from a checkpoint first drops the records after that
checkpoint's step (:meth:`MetricsLog.rewind`): they describe steps that
will be trained again. A line cut short by a kill is skipped when reading.

One record per logged event, ``{"step", "epoch", "split", "loss", ...}``,
written both as a JSON line and as scalars of a per-split summary writer
(``summaries/train``, ``summaries/eval``: TensorBoard overlays the two under
one tag). Train records also carry the per-block gradient norms *before*
the transform, as ``grad_norm/<block name>`` scalars and a ``grad_norm``
dict in the JSON line: the vanishing/exploding picture of the paper.

Scalars are written with core ``tf.summary.write`` and the metadata of
TensorBoard's scalars plugin, which is what ``tf.summary.scalar`` does but
without requiring the ``tensorboard`` package at training time.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from tf_bng.training.files import atomic_write_text

__all__ = ["MetricsLog", "read_records", "write_scalar"]

METRICS_FILE = "metrics.jsonl"


def _scalar_metadata() -> bytes:
    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = "scalars"
    metadata.data_class = summary_pb2.DATA_CLASS_SCALAR
    return metadata.SerializeToString()


_SCALAR_METADATA = _scalar_metadata()


def write_scalar(tag: str, value: Any, step: int) -> None:
    """A TensorBoard scalar on the default summary writer.

    Args:
        tag: The scalar's name, e.g. ``"loss"`` or ``"grad_norm/dense/kernel"``.
        value: A number; written as float32.
        step: The x coordinate.
    """
    tf.summary.write(tag, tf.constant(value, tf.float32), step=step, metadata=_SCALAR_METADATA)


def _plain(value: Any) -> Any:
    """JSON-safe scalar: floats stay floats, non-finite become null."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    value = float(value)
    return value if math.isfinite(value) else None


class MetricsLog:
    """Appends records to ``workdir/metrics.jsonl`` and TensorBoard; a no-op if not ``enabled``.

    Args:
        workdir: The run's directory (created if ``enabled``); summaries go to
            ``workdir/summaries/<split>``.
        enabled: False on the non-chief workers of a multi-worker run: records are still
            returned, nothing is written.
        block_names: The names of the gradient blocks, in the order of the per-block
            values given to :meth:`write`.
    """

    def __init__(self, workdir: str, *, enabled: bool = True, block_names: Sequence[str] = ()):
        self.workdir = workdir
        self.enabled = enabled
        self.block_names = tuple(block_names)
        self.path = os.path.join(workdir, METRICS_FILE)
        self._writers: dict[str, Any] = {}
        if enabled:
            tf.io.gfile.makedirs(workdir)

    def _writer(self, split: str):
        if split not in self._writers:
            self._writers[split] = tf.summary.create_file_writer(
                os.path.join(self.workdir, "summaries", split)
            )
        return self._writers[split]

    def write(
        self,
        split: str,
        step: int,
        scalars: Mapping[str, Any],
        block_norms: Sequence[float] | None = None,
        block_scales: Sequence[float] | None = None,
        block_log10_norms: Sequence[float] | None = None,
    ) -> dict:
        """Log one event; returns the JSON record.

        Args:
            split: ``"train"`` or ``"eval"``: the summary writer, and the record's
                ``split``.
            step: The step the record describes.
            scalars: ``{name: number}``; non-finite values become null in the JSON line.
            block_norms: Per-block gradient norms before the transform, to
                ``grad_norm/<block>``.
            block_scales: The factor each block's gradient was multiplied by (trust
                ratios, clip factors), to ``scale/<block>``.
            block_log10_norms: Backward scaling's log10 norms (finite where the norm
                leaves float32's range), to ``grad_log10_norm/<block>``.

        Returns:
            The record: ``{"step", "split", **scalars}`` plus a ``{block: value}`` dict per
            per-block series given.
        """
        record = {"step": int(step), "split": split}
        record.update({k: _plain(v) for k, v in scalars.items()})
        per_block = {}
        for key, values in (
            ("grad_norm", block_norms),
            ("scale", block_scales),
            ("grad_log10_norm", block_log10_norms),
        ):
            if values is not None and len(values):
                per_block[key] = {
                    n: _plain(v) for n, v in zip(self.block_names, np.asarray(values))
                }
                record[key] = per_block[key]
        if not self.enabled:
            return record
        with tf.io.gfile.GFile(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        with self._writer(split).as_default():
            for key, value in scalars.items():
                write_scalar(key, float(value), step)
            for key, values in per_block.items():
                for name, value in values.items():
                    write_scalar(f"{key}/{name}", float("nan") if value is None else value, step)
        self._writers[split].flush()
        return record

    def rewind(self, step: int) -> int:
        """Keep only the records of steps <= ``step`` (atomically); returns how many went.

        Args:
            step: The restored checkpoint's step: records after it describe steps that
                will be trained again.

        Returns:
            The number of lines dropped (0 when disabled or nothing was logged).
        """
        if not self.enabled or not tf.io.gfile.exists(self.path):
            return 0
        with tf.io.gfile.GFile(self.path) as f:
            lines = [line for line in f.read().splitlines() if line.strip()]
        kept = [line for line in lines if _step_of(line) is not None and _step_of(line) <= step]
        if len(kept) == len(lines):
            return 0
        atomic_write_text(self.path, "".join(line + "\n" for line in kept))
        return len(lines) - len(kept)

    def close(self) -> None:
        """Closes the summary writers; the log can be opened again."""
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()


def _parse(line: str) -> dict | None:
    """The record of one line, or None for a line cut short (a kill while appending)."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


def _step_of(line: str) -> int | None:
    record = _parse(line)
    return None if record is None or "step" not in record else int(record["step"])


def read_records(workdir: str, split: str | None = None) -> list[dict]:
    """The records of ``workdir/metrics.jsonl`` (of one split if given).

    Args:
        workdir: The run's directory.
        split: Only this split's records (``"train"``, ``"eval"``); None: all.

    Returns:
        The records in file order, skipping a line cut short by a kill; [] if there is no
        file.
    """
    path = os.path.join(workdir, METRICS_FILE)
    if not tf.io.gfile.exists(path):
        return []
    with tf.io.gfile.GFile(path) as f:
        records = [_parse(line) for line in f if line.strip()]
    return [r for r in records if r is not None and (split is None or r.get("split") == split)]
