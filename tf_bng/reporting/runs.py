"""Run variants through the project's own ``train_and_evaluate`` and read back what they logged.

Runs go one after another in this process (TensorFlow is imported once; the
machine has 2 cores). Each leaves the usual run directory (``metrics.jsonl``,
TensorBoard summaries, final checkpoint) plus ``report_run.json``; with
``reuse=True`` a run whose stored config equals the variant's is read back
instead of trained again (to re-render the report without re-training).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
import traceback
from typing import Callable, Iterable, Optional

import numpy as np

from tf_bng.reporting.experiments import Variant

__all__ = ["RunResult", "run_variant", "run_variants", "curve", "is_finite_number"]

RUN_FILE = "report_run.json"
# tf_bng.training.errors.TrainingDiverged, matched by name: the loop stops a run whose steps
# stay non-finite, which for a too-large learning rate is the expected outcome.
_DIVERGED = "TrainingDiverged"


@dataclasses.dataclass
class RunResult:
    """What the report needs from one run."""

    variant: Variant
    final: dict  # train_and_evaluate's return value ({} if the run failed)
    records: list  # metrics.jsonl records (train and eval)
    seconds: float
    error: Optional[str] = None  # why the run stopped early, if it did
    diverged: bool = False  # stopped by the loop's non-finite-step guard: a result, not a bug
    reused: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def failed(self) -> bool:
        return self.error is not None and not self.diverged

    def metric(self, key: str) -> float:
        """A final metric (``"train_loss"``), NaN when absent or not finite."""
        value = self.final.get(key)
        return float(value) if is_finite_number(value) else math.nan


def is_finite_number(value) -> bool:
    """True for a finite int or float (metrics.jsonl stores non-finite values as null)."""
    return isinstance(value, (int, float)) and math.isfinite(value)


def curve(result: RunResult, split: str, metric: str, x: str = "epoch") -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of one logged metric; null (non-finite) values become NaN."""
    rows = [r for r in result.records if r.get("split") == split and metric in r]
    xs = np.array([float(r[x]) for r in rows], dtype=np.float64)
    ys = np.array([r[metric] if is_finite_number(r[metric]) else math.nan for r in rows], dtype=np.float64)
    return xs, ys


def _config_json(config) -> str:
    return config.to_json_best_effort(sort_keys=True)


def _load_previous(workdir: str, config_json: str, variant: Variant) -> Optional[RunResult]:
    path = os.path.join(workdir, RUN_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        stored = json.load(f)
    if stored.get("config") != config_json or (stored.get("error") and not stored.get("diverged")):
        return None
    from tf_bng.training.metrics_log import read_records

    return RunResult(
        variant, stored["final"], read_records(workdir), stored["seconds"],
        error=stored.get("error"), diverged=bool(stored.get("diverged")), reused=True,
    )


def _describe(error: Exception) -> str:
    """Type and the last line of the message (TF puts the real cause after "in user code:")."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[-1] if lines else ''}"


def run_variant(variant: Variant, root: str, *, reuse: bool = False) -> RunResult:
    """Train ``variant`` from scratch in ``root/<variant.name>`` (or reuse an identical run)."""
    import keras

    from tf_bng.training import train_and_evaluate
    from tf_bng.training.metrics_log import read_records

    config = variant.build_config()
    config_json = _config_json(config)
    workdir = os.path.join(root, variant.name)
    if reuse:
        previous = _load_previous(workdir, config_json, variant)
        if previous is not None:
            return previous
    shutil.rmtree(workdir, ignore_errors=True)
    keras.backend.clear_session()  # fresh layer names and no graph left over from the last run
    started = time.perf_counter()
    final, error, trace, diverged = {}, None, None, False
    try:
        final = train_and_evaluate(config, workdir)
    except Exception as e:  # noqa: BLE001 - a failed run is reported, the others still run
        error, trace = _describe(e), traceback.format_exc()
        diverged = type(e).__name__ == _DIVERGED
    seconds = time.perf_counter() - started
    final = {k: (float(v) if is_finite_number(v) else None) for k, v in final.items()}
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, RUN_FILE), "w") as f:
        json.dump(
            {"config": config_json, "final": final, "seconds": seconds, "error": error,
             "diverged": diverged, "traceback": trace},
            f,
        )
    return RunResult(variant, final, read_records(workdir), seconds, error=error, diverged=diverged)


def run_variants(
    variants: Iterable[Variant],
    root: str,
    *,
    reuse: bool = False,
    progress: Callable[[str], None] = print,
) -> dict[str, RunResult]:
    """Run each variant in turn; ``{variant.name: RunResult}``."""
    variants = list(variants)
    results: dict[str, RunResult] = {}
    for index, variant in enumerate(variants, 1):
        result = run_variant(variant, root, reuse=reuse)
        results[variant.name] = result
        status = "reused" if result.reused else f"{result.seconds:.1f} s"
        if result.error:
            status += f", {'diverged' if result.diverged else 'FAILED'}: {result.error}"
        progress(f"[{index}/{len(variants)}] {variant.name}: {status}")
    return results
