"""Small Markdown builders: tables, number cells, collapsible command lists."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["table", "number", "commands_block", "bullet"]


def number(value: Any, digits: int = 4, *, missing: str = "n/a") -> str:
    """A table cell: 4 significant digits, scientific for very small or large values."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return missing
    if isinstance(value, int):
        return f"{value:,}"
    value = float(value)
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.{max(digits - 1, 1)}e}"
    return f"{value:.{digits}g}"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub Markdown table; cells are converted with ``str`` (format numbers first)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        cells = [str(c).replace("|", "\\|") for c in row]
        if len(cells) != len(headers):
            raise ValueError(f"Row {cells} has {len(cells)} cells for {len(headers)} columns.")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def commands_block(summary: str, commands: Iterable[str]) -> str:
    """A collapsed ``<details>`` block holding shell commands."""
    body = "\n".join(commands)
    return f"<details><summary>{summary}</summary>\n\n```bash\n{body}\n```\n\n</details>"


def bullet(verdict: str, claim: str, evidence: str) -> str:
    return f"- **{verdict}** — {claim} {evidence}"
