"""``make report``: the reproduction report.

Run as ``python -m trainers.report --out=docs/results [--quick]``.

Runs the CPU-scale reproductions (paper Figure 1 on MNIST-5k, the seed's
convex quadratic and deep MLP, NGadap and CLIP against NG) with the
project's own training loop, writes the PNGs and ``results.json`` into
``--out`` and RESULTS.md next to that directory (``docs/results`` ->
``docs/RESULTS.md``). Full: every trained network over 3 seeds (median,
min-max band), ≤ 60 min on 2 cores; ``--quick``: one seed, ≤ 5 min.
Run directories go to ``--workdir``; ``--reuse`` re-renders from finished
runs whose config is unchanged instead of training them again.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from absl import app, flags, logging

_OUT = flags.DEFINE_string("out", "docs/results", "Directory for the PNGs and results.json.")
_MARKDOWN = flags.DEFINE_string("markdown", None, "RESULTS.md path (default: next to --out).")
_WORKDIR = flags.DEFINE_string("workdir", "runs/report", "Where the run directories go.")
_QUICK = flags.DEFINE_bool("quick", False, "One seed, fewer epochs and iterations (≤ 5 minutes).")
_SMOKE = flags.DEFINE_bool(
    "smoke", False, "Tiny models and data: checks the pipeline, not results."
)
_JOBS = flags.DEFINE_integer(
    "jobs", 2, "Runs trained at once, each in its own process (2 fills a 2-core machine)."
)
_REUSE = flags.DEFINE_bool("reuse", False, "Reuse finished runs with an identical config.")


def _command() -> str:
    parts = ["python -m trainers.report", f"--out={_OUT.value}"]
    for flag in (_QUICK, _SMOKE, _REUSE):
        if flag.value:
            parts.append(f"--{flag.name}")
    if _MARKDOWN.value:
        parts.append(f"--markdown={_MARKDOWN.value}")
    if _WORKDIR.value != _WORKDIR.default:
        parts.append(f"--workdir={_WORKDIR.value}")
    return " ".join(parts)


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    if _QUICK.value and _SMOKE.value:
        raise app.UsageError("--quick and --smoke are exclusive.")
    logging.set_verbosity(logging.ERROR)  # one progress line per run instead of TF's retrace notes
    from .reporting import generate_report

    scale = "smoke" if _SMOKE.value else "quick" if _QUICK.value else "full"
    report = generate_report(
        _OUT.value,
        scale=scale,
        workdir=_WORKDIR.value,
        markdown_path=_MARKDOWN.value,
        reuse=_REUSE.value,
        jobs=_JOBS.value,
        command=_command(),
        progress=lambda line: print(line, flush=True),
    )
    print(
        f"Wrote {report['markdown']} and {len(report['figures'])} figures in "
        f"{report['wall_seconds'] / 60:.1f} min."
    )
    if report["failed"]:
        sys.exit(f"error: {len(report['failed'])} runs failed: {', '.join(report['failed'])}")


if __name__ == "__main__":
    app.run(main)
