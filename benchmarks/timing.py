"""Side-by-side timing helpers: interleaved runs, median ratios.

Interleaving exposes every candidate to the same machine load, so a ratio
stays meaningful on a shared 2-core box. Short rounds (one to a few calls)
matter: with 5-call rounds (~3 s for ResNet-20) under load 3-6, two identical
``none`` steps gave per-round ratios from 0.6 to 1.6 and a median off by 4-8%;
one-call rounds brought the interquartile range of that null ratio to ~±5%
and its median to within ~1.5%. The order is reversed every other round
(A B C, C B A, ...) so no candidate always runs right after another.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from typing import Callable, Dict, Sequence

import numpy as np


def time_call(fn: Callable[[], object], repeats: int) -> float:
    """Seconds per call of ``fn`` over ``repeats`` calls (fn must block until done)."""
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def interleaved(
    candidates: Dict[str, Callable[[], object]], *, rounds: int, repeats: int = 1, warmup: int = 2
) -> Dict[str, list[float]]:
    """Time every candidate ``rounds`` times, alternating, after ``warmup`` calls each."""
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    times: Dict[str, list[float]] = {name: [] for name in candidates}
    order = list(candidates)
    for r in range(rounds):
        for name in order if r % 2 == 0 else reversed(order):
            times[name].append(time_call(candidates[name], repeats))
    return times


def round_ratios(numerator: Sequence[float], denominator: Sequence[float]) -> list[float]:
    return [a / b for a, b in zip(numerator, denominator)]


def median_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> float:
    """Median of the per-round ratios (robust to one slow round)."""
    return statistics.median(round_ratios(numerator, denominator))


def ratio_quartiles(
    numerator: Sequence[float], denominator: Sequence[float]
) -> tuple[float, float]:
    """25th and 75th percentiles of the per-round ratios: the noise band of the median."""
    q25, q75 = np.percentile(round_ratios(numerator, denominator), [25, 75])
    return float(q25), float(q75)


def median_ms(times: Sequence[float]) -> float:
    return 1e3 * statistics.median(times)


def machine_load() -> str:
    """``uptime``-style load averages, printed with every table (the box is shared)."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


@dataclasses.dataclass(frozen=True)
class Row:
    """One candidate's median time and its per-round ratio to the reference."""

    ms: float
    ratio: float
    q25: float
    q75: float

    def cells(self) -> str:
        return f"{self.ms:9.2f} {self.ratio:7.3f}  {self.q25:5.3f}-{self.q75:5.3f}"


HEADER_CELLS = f"{'ms':>9} {'ratio':>7}  {'q25-q75':>11}"


def ratio_rows(times: Dict[str, list[float]], reference: str) -> Dict[str, Row]:
    """Every candidate of an :func:`interleaved` run against ``reference``."""
    base = times[reference]
    return {
        name: Row(median_ms(t), median_ratio(t, base), *ratio_quartiles(t, base))
        for name, t in times.items()
    }
