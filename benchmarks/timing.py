"""Side-by-side timing helpers: interleaved runs, median ratios.

Interleaving (A, B, A, B, ...) exposes both candidates to the same machine
load, so the ratio stays meaningful on a shared 2-core box.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable, Dict


def time_call(fn: Callable[[], object], repeats: int) -> float:
    """Seconds per call of ``fn`` over ``repeats`` calls (fn must block until done)."""
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def interleaved(
    candidates: Dict[str, Callable[[], object]], *, rounds: int, repeats: int, warmup: int = 2
) -> Dict[str, list[float]]:
    """Time every candidate ``rounds`` times, alternating, after ``warmup`` calls each."""
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    times: Dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            times[name].append(time_call(fn, repeats))
    return times


def median_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median of the per-round ratios (robust to one slow round)."""
    return statistics.median(a / b for a, b in zip(numerator, denominator))
