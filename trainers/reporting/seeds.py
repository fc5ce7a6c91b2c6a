"""Claims over seeds, not one run: per-seed final metrics -> median, min, max; curve bands.

Deep sigmoid MLPs are chaotic: one seed learns, the next stays stuck, so a
claim judged on one run says little. These helpers are shared by the
``trainers.seeds`` binary (one config over N seeds) and the report (every
trained-network claim over several seeds). Non-finite values (a diverged
run) are kept in ``values`` and counted, but left out of median/min/max.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

__all__ = ["Spread", "spread", "summarize", "final_metrics", "band", "format_summary"]

# Record fields that are not metrics of the run's outcome.
_NOT_METRICS = ("step", "epoch", "split", "grad_norm")


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclasses.dataclass(frozen=True)
class Spread:
    """One metric over seeds: the per-seed values and their median / min / max (finite ones)."""

    values: tuple[float, ...]

    @property
    def finite(self) -> np.ndarray:
        return np.array([v for v in self.values if _finite(v)], dtype=np.float64)

    @property
    def missing(self) -> int:
        """How many seeds have no finite value (diverged or failed runs)."""
        return len(self.values) - self.finite.size

    def _stat(self, fn) -> float:
        finite = self.finite
        return float(fn(finite)) if finite.size else math.nan

    @property
    def median(self) -> float:
        return self._stat(np.median)

    @property
    def min(self) -> float:
        return self._stat(np.min)

    @property
    def max(self) -> float:
        return self._stat(np.max)

    def all(self, predicate) -> bool:
        """Whether ``predicate`` holds for every seed (a non-finite value never satisfies it)."""
        return bool(self.values) and all(_finite(v) and predicate(v) for v in self.values)

    def count(self, predicate) -> int:
        return sum(1 for v in self.values if _finite(v) and predicate(v))

    def format(self, digits: int = 3) -> str:
        """``"0.512 [0.43–0.61]"`` (median [min–max]); one seed: just the value."""
        if not self.finite.size:
            return "n/a"
        median = f"{self.median:.{digits}g}"
        text = (
            median
            if len(self.values) == 1
            else (f"{median} [{self.min:.{digits}g}–{self.max:.{digits}g}]")
        )
        return text + (f" ({self.missing} not finite)" if self.missing else "")

    def as_dict(self) -> dict:
        return {
            "median": _json(self.median),
            "min": _json(self.min),
            "max": _json(self.max),
            "values": [_json(v) for v in self.values],
            "not_finite": self.missing,
        }


def _json(value) -> float | None:
    return float(value) if _finite(value) else None


def spread(values: Iterable) -> Spread:
    """A :class:`Spread` of ``values`` (None or non-numbers count as non-finite)."""
    return Spread(tuple(float(v) if _finite(v) else math.nan for v in values))


def summarize(per_seed: Mapping[int, Mapping[str, float]]) -> dict[str, Spread]:
    """``{metric: Spread over seeds}`` for every metric any seed reported, seeds in key order."""
    seeds = sorted(per_seed)
    metrics = sorted({k for s in seeds for k in per_seed[s]})
    return {m: spread(per_seed[s].get(m) for s in seeds) for m in metrics}


def final_metrics(records: Sequence[Mapping]) -> dict[str, float]:
    """A run's final metrics from its ``metrics.jsonl`` records (``read_records(workdir)``).

    ``train_<metric>`` from the last train record, ``eval_<metric>`` from
    the last eval record, ``step`` of the last record. Read from the log, not
    from ``train_and_evaluate``'s return value, so a finished run that is
    resumed (and trains no further step) still reports its training loss.
    """
    final: dict[str, float] = {}
    for split in ("train", "eval"):
        rows = [r for r in records if r.get("split") == split]
        if rows:
            final.update({f"{split}_{k}": v for k, v in rows[-1].items() if k not in _NOT_METRICS})
    if records:
        final["step"] = max(int(r.get("step", 0)) for r in records)
    return final


def band(curves: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, ...]:
    """``(x, median, min, max)`` over seeds, at the x values every curve has.

    Runs of one config log at the same epochs; a run that stopped early
    (diverged) shortens the band to what all of them logged. Non-finite
    points are ignored in the statistics (NaN where no seed is finite).
    """
    curves = [(np.asarray(x, np.float64), np.asarray(y, np.float64)) for x, y in curves]
    if not curves:
        empty = np.array([])
        return empty, empty, empty, empty
    common = curves[0][0]
    for x, _ in curves[1:]:
        common = np.intersect1d(common, x)
    stack = np.stack([y[np.searchsorted(x, common)] if common.size else y[:0] for x, y in curves])
    with warnings.catch_warnings():  # an all-NaN column (every seed diverged) stays NaN quietly
        warnings.simplefilter("ignore", RuntimeWarning)
        return common, np.nanmedian(stack, 0), np.nanmin(stack, 0), np.nanmax(stack, 0)


def format_summary(summary: Mapping[str, Spread], seeds: Sequence[int], digits: int = 5) -> str:
    """A plain-text table: one row per metric, median / min / max and the per-seed values."""
    header = f"{'metric':<24} {'median':>10} {'min':>10} {'max':>10}   per seed ({', '.join(map(str, seeds))})"
    lines = [header, "-" * len(header)]
    for metric, s in summary.items():
        cells = [_cell(v, digits) for v in (s.median, s.min, s.max)]
        per_seed = " ".join(_cell(v, digits).strip() for v in s.values)
        lines.append(f"{metric:<24} {cells[0]:>10} {cells[1]:>10} {cells[2]:>10}   {per_seed}")
    return "\n".join(lines)


def _cell(value: float, digits: int) -> str:
    if not _finite(value):
        return "n/a"
    value = float(value)
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}"
