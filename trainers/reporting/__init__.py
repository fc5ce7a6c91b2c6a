"""The reproduction report (issue 5): CPU-scale runs of the paper's and the seed's experiments.

``generate_report(out_dir, scale="full")`` runs every variant through
``trainers.experiment.train_and_evaluate``, draws PNGs into ``out_dir`` and
writes RESULTS.md next to it; ``python -m trainers.report`` is its command
line. Modules: ``experiments`` (what runs), ``runs`` (running and reading
back), ``findings`` (verdicts computed from the numbers), ``plots``,
``markdown`` / ``document`` (RESULTS.md), ``paper`` (the paper's GPU-scale
tables and commands), ``generate`` (all of it).
"""

from .experiments import SCALES, Scale, Section, Variant, build_sections
from .generate import generate_report, markdown_path_for

__all__ = [
    "SCALES",
    "Scale",
    "Section",
    "Variant",
    "build_sections",
    "generate_report",
    "markdown_path_for",
]
