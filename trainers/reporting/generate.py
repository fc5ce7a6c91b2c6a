"""The whole report: run every section, draw the figures, write RESULTS.md and results.json."""

from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import time
from collections.abc import Callable

from . import plots
from .document import ReportInputs, render
from .experiments import (
    OPTIMIZER_LABELS,
    SCALES,
    Section,
    build_sections,
    unique_variants,
)
from .runs import RunGroup, run_variants

__all__ = ["markdown_path_for", "generate_report"]


def markdown_path_for(out_dir: str) -> str:
    """The rule: RESULTS.md goes next to the figures' directory (docs/results -> docs/RESULTS.md)."""
    return os.path.join(os.path.dirname(os.path.abspath(out_dir)), "RESULTS.md")


def _environment() -> str:
    import keras
    import tensorflow as tf

    gpus = len(tf.config.list_physical_devices("GPU"))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPU cores, {gpus or 'no'} GPU; load average {load} at the end "
        f"(the machine may be shared); {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC"
    )


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children: independent of load."""
    own, children = (
        resource.getrusage(r) for r in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _by_key(sections: tuple[Section, ...], key: str) -> Section:
    return next(s for s in sections if s.key == key)


def _seeds_note(section: Section) -> str:
    seeds = len(section.variants[0].seeds)
    return f" — median of {seeds} seeds, band min–max" if seeds > 1 else ""


def _draw_figures(sections, results, out_dir: str) -> dict[str, str]:
    """All PNGs; returns {figure key: absolute path}."""
    paths = {
        k: os.path.join(out_dir, f"{k}.png")
        for k in ("figure1", "gradient_norms", "quadratic", "deep_mlp", "adaptive")
    }
    figure1 = _by_key(sections, "figure1")
    plots.plot_figure1(
        figure1,
        results,
        paths["figure1"],
        "Sigmoid MLP on MNIST-5k: plain (dashed) vs NG (solid)" + _seeds_note(figure1),
    )
    plots.plot_gradient_norms(
        figure1,
        results,
        paths["gradient_norms"],
        "Layer gradient norms at the first log, plain Adam"
        + (" (median of seeds)" if _seeds_note(figure1) else ""),
    )
    plots.plot_quadratic(
        _by_key(sections, "quadratic"),
        results,
        paths["quadratic"],
        "Convex quadratic: f − f* vs iteration",
    )
    deep = _by_key(sections, "deep_mlp")
    plots.plot_losses(
        [("", deep.variants)],
        results,
        paths["deep_mlp"],
        "Deep MLP on MNIST-5k" + _seeds_note(deep),
    )
    adaptive = _by_key(sections, "adaptive")
    optimizers = list(dict.fromkeys(v.optimizer for v in adaptive.variants))
    plots.plot_losses(
        [
            (OPTIMIZER_LABELS.get(o, o), [v for v in adaptive.variants if v.optimizer == o])
            for o in optimizers
        ],
        results,
        paths["adaptive"],
        adaptive.title + _seeds_note(adaptive),
        color_by="transform",
    )
    return paths


def _deep_nets_section(out_dir: str, markdown_dir: str) -> tuple[str, ...]:
    """Backward scaling's evidence (``python -m trainers.deep_nets``), when it has been run.

    Its runs (66, about 45 minutes) take longer than the report's budget, so
    they are their own program; the report includes their table and plot.
    """
    table = os.path.join(out_dir, "deep_nets.md")
    if not os.path.exists(table):
        return ()
    with open(table) as f:
        text = f.read().strip()
    plot = os.path.relpath(os.path.join(out_dir, "deep_nets.png"), markdown_dir)
    return (
        "## Very deep nets and float16: backward scaling (issue 13)\n\n"
        "Adam+NG on MNIST-5k with and without `transform.backward_scaling` (seeds per variant in "
        "the table; median [min, max]). Produced by `python -m trainers.deep_nets` (not re-run by the report).\n\n"
        + text
        + f"\n\n![deep nets]({plot})",
    )


def generate_report(
    out_dir: str,
    *,
    scale: str = "full",
    workdir: str = "runs/report",
    markdown_path: str | None = None,
    reuse: bool = False,
    jobs: int = 1,
    command: str | None = None,
    progress: Callable[[str], None] = print,
) -> dict:
    """Run everything for ``scale`` and write the report; returns paths and timings.

    ``out_dir`` gets the PNGs and ``results.json``; the markdown goes to
    ``markdown_path`` (default :func:`markdown_path_for`). ``workdir`` holds
    the run directories; ``jobs`` runs train at once, each in its own process.
    """
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    sections = build_sections(SCALES[scale])
    variants = unique_variants(sections)
    runs = sum(len(v.seeds) for v in variants)
    progress(f"Report scale {scale!r}: {len(variants)} variants, {runs} runs into {workdir}.")
    results: dict[str, RunGroup] = run_variants(
        variants, workdir, reuse=reuse, jobs=jobs, progress=progress
    )

    os.makedirs(out_dir, exist_ok=True)
    markdown_path = markdown_path or markdown_path_for(out_dir)
    figures = _draw_figures(sections, results, out_dir)
    markdown_dir = os.path.dirname(os.path.abspath(markdown_path))
    wall = time.perf_counter() - started
    inputs = ReportInputs(
        scale=SCALES[scale],
        sections=sections,
        results=results,
        figures={k: os.path.relpath(p, markdown_dir) for k, p in figures.items()},
        runs_root=workdir,
        command=command or f"python -m trainers.report --out={out_dir}",
        wall_seconds=wall,
        cpu_seconds=_cpu_seconds() - cpu_started,
        environment=_environment(),
        extra_sections=_deep_nets_section(out_dir, markdown_dir),
    )
    os.makedirs(markdown_dir, exist_ok=True)
    with open(markdown_path, "w") as f:
        f.write(render(inputs))
    summary = {
        "scale": scale,
        "wall_seconds": wall,
        "runs": {
            name: {
                "command": g.variant.command(workdir),
                "seconds": g.seconds,
                "seeds": {
                    str(r.seed): {
                        "final": r.final,
                        "seconds": r.seconds,
                        "error": r.error,
                        "diverged": r.diverged,
                    }
                    for r in g.runs
                },
                "summary": {
                    key: g.spread(key).as_dict()
                    for key in ("train_loss", "eval_loss", "eval_accuracy")
                },
            }
            for name, g in results.items()
        },
    }
    results_json = os.path.join(out_dir, "results.json")
    with open(results_json, "w") as f:
        json.dump(summary, f, indent=1, sort_keys=True)
    return dict(
        markdown=markdown_path,
        figures=figures,
        results_json=results_json,
        wall_seconds=wall,
        failed=[n for n, r in results.items() if r.failed],
    )
