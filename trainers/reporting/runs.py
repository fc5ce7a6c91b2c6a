"""Run variants through the project's own ``train_and_evaluate`` and read back what they logged.

Runs go one after another in this process (TensorFlow is imported once; the
machine has 2 cores), one per (variant, seed), in ``trainers.seeds``'s
layout ``<root>/<variant>/seed<N>``. Each leaves the usual run directory
(``metrics.jsonl``, TensorBoard summaries, final checkpoint) plus
``report_run.json``; with ``reuse=True`` a run whose stored config equals
the variant's is read back instead of trained again (to re-render the
report without re-training). A variant's runs form a :class:`RunGroup`,
which the findings and tables read through medians and spreads over seeds.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import math
import multiprocessing
import os
import shutil
import time
import traceback
from collections.abc import Callable, Iterable

import numpy as np

from .experiments import Variant
from .seeds import Spread, band, spread

__all__ = [
    "RunResult",
    "RunGroup",
    "run_variant",
    "run_variants",
    "curve",
    "curve_band",
    "is_finite_number",
]

RUN_FILE = "report_run.json"
# tf_bng.errors.TrainingDiverged, matched by name: the loop stops a run whose steps
# stay non-finite, which for a too-large learning rate is the expected outcome.
_DIVERGED = "TrainingDiverged"


@dataclasses.dataclass
class RunResult:
    """What the report needs from one run (one seed of a variant)."""

    variant: Variant
    final: dict  # train_and_evaluate's return value ({} if the run failed)
    records: list  # metrics.jsonl records (train and eval)
    seconds: float
    error: str | None = None  # why the run stopped early, if it did
    diverged: bool = False  # stopped by the loop's non-finite-step guard: a result, not a bug
    reused: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def failed(self) -> bool:
        return self.error is not None and not self.diverged

    seed: int = 0

    def metric(self, key: str) -> float:
        """A final metric (``"train_loss"``), NaN when absent or not finite."""
        value = self.final.get(key)
        return float(value) if is_finite_number(value) else math.nan


@dataclasses.dataclass
class RunGroup:
    """The runs of one variant, one per seed: a claim is judged on all of them.

    ``metric`` is the median over seeds, ``spread`` the per-seed values with
    their median / min / max. A group is ``failed`` / ``diverged`` if any of
    its runs is.
    """

    variant: Variant
    runs: list  # RunResult, in the variant's seed order

    def metric(self, key: str) -> float:
        return self.spread(key).median

    def spread(self, key: str) -> Spread:
        return spread(run.metric(key) for run in self.runs)

    def map(self, fn) -> Spread:
        """A :class:`Spread` of ``fn(run)`` over the seeds (e.g. a per-run mean train loss)."""
        return spread(fn(run) for run in self.runs)

    @property
    def seeds(self) -> list:
        return [run.seed for run in self.runs]

    @property
    def seconds(self) -> float:
        return sum(run.seconds for run in self.runs)

    @property
    def ok(self) -> bool:
        return all(run.ok for run in self.runs)

    @property
    def failed(self) -> bool:
        return any(run.failed for run in self.runs)

    @property
    def diverged(self) -> bool:
        return any(run.diverged for run in self.runs)

    @property
    def error(self) -> str | None:
        errors = [f"seed {run.seed}: {run.error}" for run in self.runs if run.error]
        return "; ".join(errors) or None

    @property
    def reused(self) -> bool:
        return all(run.reused for run in self.runs)


def is_finite_number(value) -> bool:
    """True for a finite int or float (metrics.jsonl stores non-finite values as null)."""
    return isinstance(value, (int, float)) and math.isfinite(value)


def curve(
    result: RunResult, split: str, metric: str, x: str = "epoch"
) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of one logged metric; null (non-finite) values become NaN."""
    rows = [r for r in result.records if r.get("split") == split and metric in r]
    xs = np.array([float(r[x]) for r in rows], dtype=np.float64)
    ys = np.array(
        [r[metric] if is_finite_number(r[metric]) else math.nan for r in rows], dtype=np.float64
    )
    return xs, ys


def curve_band(
    group: RunGroup, split: str, metric: str, x: str = "epoch"
) -> tuple[np.ndarray, ...]:
    """``(x, median, min, max)`` of one logged metric over the group's seeds."""
    return band([curve(run, split, metric, x) for run in group.runs])


def _config_json(config) -> str:
    return config.to_json_best_effort(sort_keys=True)


def _load_previous(workdir: str, config_json: str, variant: Variant, seed: int) -> RunResult | None:
    path = os.path.join(workdir, RUN_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        stored = json.load(f)
    if stored.get("config") != config_json or (stored.get("error") and not stored.get("diverged")):
        return None
    from tf_bng.training.metrics_log import read_records

    return RunResult(
        variant,
        stored["final"],
        read_records(workdir),
        stored["seconds"],
        error=stored.get("error"),
        diverged=bool(stored.get("diverged")),
        reused=True,
        seed=seed,
    )


def _describe(error: Exception) -> str:
    """Type and the last line of the message (TF puts the real cause after "in user code:")."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[-1] if lines else ''}"


def run_variant(variant: Variant, root: str, seed: int, *, reuse: bool = False) -> RunResult:
    """Train seed ``seed`` of ``variant`` from scratch in its run directory (or reuse an identical run)."""
    import keras

    from tf_bng.training.metrics_log import read_records

    from ..experiment import train_and_evaluate

    config = variant.build_config(seed)
    config_json = _config_json(config)
    workdir = variant.run_dir(root, seed)
    if reuse:
        previous = _load_previous(workdir, config_json, variant, seed)
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
            {
                "config": config_json,
                "final": final,
                "seconds": seconds,
                "error": error,
                "diverged": diverged,
                "traceback": trace,
            },
            f,
        )
    return RunResult(
        variant, final, read_records(workdir), seconds, error=error, diverged=diverged, seed=seed
    )


def run_variants(
    variants: Iterable[Variant],
    root: str,
    *,
    reuse: bool = False,
    jobs: int = 1,
    progress: Callable[[str], None] = print,
) -> dict[str, RunGroup]:
    """Run every seed of each variant; ``{variant.name: RunGroup}`` in variant and seed order.

    ``jobs`` > 1 trains that many runs at once, each in a fresh process (a
    deep net's run uses about one of a small machine's cores; op determinism
    is per process, as in the binary).
    """
    work = [(variant, seed) for variant in variants for seed in variant.seeds]
    if jobs <= 1:
        return _grouped(work, (run_variant(v, root, s, reuse=reuse) for v, s in work), progress)
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
        futures = [pool.submit(run_variant, v, root, s, reuse=reuse) for v, s in work]
        return _grouped(work, (f.result() for f in futures), progress)


def _grouped(work, results, progress: Callable[[str], None]) -> dict[str, RunGroup]:
    """The results (in ``work`` order, as they come) grouped by variant, a progress line each."""
    groups: dict[str, RunGroup] = {}
    for index, ((variant, seed), result) in enumerate(zip(work, results), 1):
        groups.setdefault(variant.name, RunGroup(variant, [])).runs.append(result)
        status = "reused" if result.reused else f"{result.seconds:.1f} s"
        if result.error:
            status += f", {'diverged' if result.diverged else 'FAILED'}: {result.error}"
        progress(f"[{index}/{len(work)}] {variant.name} seed {seed}: {status}")
    return groups
