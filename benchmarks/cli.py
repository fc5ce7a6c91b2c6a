"""Command-line plumbing shared by the benchmark scripts.

Every script takes ``--rounds`` / ``--repeats`` and ``--smoke`` (one round on a
tiny model: the test suite runs this to check the script still works; its
numbers mean nothing), prints the machine load first, one table, and a last
summary line that other tools can parse.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks import workloads
from benchmarks.timing import HEADER_CELLS, Timings, interleaved, machine_load, ratio_rows


def parser(doc: str, *, rounds: int, repeats: int = 1) -> argparse.ArgumentParser:
    """An argument parser described by the first line of ``doc``, with the shared options."""
    p = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    p.add_argument("--rounds", type=int, default=rounds, help="interleaved timing rounds")
    p.add_argument("--repeats", type=int, default=repeats, help="calls per candidate per round")
    p.add_argument("--smoke", action="store_true", help="one round on a tiny model (for tests)")
    return p


def parse(p: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv``; ``--smoke`` forces one round of one call."""
    args = p.parse_args(argv)
    if args.smoke:
        args.rounds, args.repeats = 1, 1
    print(machine_load())
    return args


def names(csv: str) -> list[str]:
    return [s for s in csv.split(",") if s]


def compare(
    model: str, calls: dict, reference: str, *, rounds: int, repeats: int, width: int
) -> tuple[dict, Timings]:
    """Time ``calls`` interleaved and print one row per candidate against ``reference``.

    Returns the rows by candidate name and the raw timings (for other ratios).
    """
    timings = interleaved(calls, rounds=rounds, repeats=repeats)
    rows = ratio_rows(timings, reference)
    for candidate, row in rows.items():
        print(f"{model:<9} {candidate:<{width}} {row.cells()}")
    return rows, timings


def headline_per_model(
    args: argparse.Namespace,
    calls_for: Callable[[workloads.Workload], dict],
    *,
    reference: str,
    candidate: str,
    headline: str,
    default_rounds: dict,
    width: int,
) -> dict:
    """For each of ``args.models``: time ``calls_for(workload)``, print the table, and end with
    ``<headline> <model>=<candidate / reference> ...``; returns those ratios by model."""
    print(f"{'model':<9} {'candidate':<{width}} {HEADER_CELLS}")
    summary = {}
    for name in names(args.models):
        calls = calls_for(workloads.build(name, smoke=args.smoke))
        rounds, repeats = default_rounds.get(name, (20, 1))
        rows, _ = compare(
            name,
            calls,
            reference,
            width=width,
            rounds=args.rounds or rounds,
            repeats=args.repeats or repeats,
        )
        summary[name] = rows[candidate].ratio
    print(f"{headline} " + " ".join(f"{k}={v:.3f}" for k, v in summary.items()))
    return summary
