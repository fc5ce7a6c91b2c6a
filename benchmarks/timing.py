"""Side-by-side timing helpers: interleaved runs, median ratios.

Interleaving exposes every candidate to the same machine load, so a ratio
stays meaningful on a shared 2-core box. Short rounds matter. Measured on
ResNet-20 with two identical ``none`` steps (an A/A test): 5-call rounds
(~3 s each) at load ~3.5 gave per-round ratios from 0.82 to 1.34 and a median
3.6% off 1; one-call rounds at load ~2.2 gave an interquartile range of
0.91-1.08 and a median within 0.5%. At load ~5.7 the wall-clock median of
identical steps was still 5-6% off (30 rounds) while the CPU-time median was
within 2%: both are reported. The order is shuffled every round (see
:func:`round_orders`) so no candidate keeps a favourable position.
"""

from __future__ import annotations

import dataclasses
import os
import random
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np


@dataclasses.dataclass
class Timings:
    """Per-round seconds per call of every candidate: wall clock and process CPU time.

    CPU time (all threads of this process) leaves out the time spent waiting
    for a core that another process holds, so on a loaded box its ratios are
    steadier than wall-clock ones; on an idle box both agree.
    """

    wall: dict[str, list[float]]
    cpu: dict[str, list[float]]


def time_call(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(wall, CPU) seconds per call of ``fn`` over ``repeats`` calls (fn must block until done)."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - wall) / repeats, (time.process_time() - cpu) / repeats


def round_orders(names: Sequence[str], rounds: int, seed: int = 0) -> list[list[str]]:
    """A random order of ``names`` per round, never starting with the previous round's last.

    Reversing the order every other round (A B C, C B A) would run the end
    candidates twice in a row at every round boundary, with warm caches: that
    made them ~2-3% faster than identical steps in the middle of the order.
    """
    rng = random.Random(seed)
    orders: list[list[str]] = []
    for _ in range(rounds):
        order = list(names)
        rng.shuffle(order)
        if orders and len(order) > 1 and order[0] == orders[-1][-1]:
            order[0], order[-1] = order[-1], order[0]
        orders.append(order)
    return orders


def interleaved(
    candidates: dict[str, Callable[[], object]], *, rounds: int, repeats: int = 1, warmup: int = 2
) -> Timings:
    """Time every candidate ``rounds`` times, in shuffled order, after ``warmup`` calls each."""
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    timings = Timings(wall={name: [] for name in candidates}, cpu={name: [] for name in candidates})
    for order in round_orders(list(candidates), rounds):
        for name in order:
            wall, cpu = time_call(candidates[name], repeats)
            timings.wall[name].append(wall)
            timings.cpu[name].append(cpu)
    return timings


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
    """One candidate against the reference: median wall time, median per-round
    wall ratio with its interquartile range, and the median CPU-time ratio."""

    ms: float
    ratio: float
    q25: float
    q75: float
    cpu_ratio: float

    def cells(self) -> str:
        return (
            f"{self.ms:9.2f} {self.ratio:7.3f}  {self.q25:5.3f}-{self.q75:5.3f} "
            f"{self.cpu_ratio:9.3f}"
        )


HEADER_CELLS = f"{'ms':>9} {'ratio':>7}  {'q25-q75':>11} {'cpu ratio':>9}"


def ratio_rows(timings: Timings, reference: str) -> dict[str, Row]:
    """Every candidate of an :func:`interleaved` run against ``reference``."""
    wall, cpu = timings.wall, timings.cpu
    return {
        name: Row(
            median_ms(t),
            median_ratio(t, wall[reference]),
            *ratio_quartiles(t, wall[reference]),
            median_ratio(cpu[name], cpu[reference]),
        )
        for name, t in wall.items()
    }
