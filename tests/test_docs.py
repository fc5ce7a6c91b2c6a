"""``make docs``: pdoc builds the API reference of the public package, warning-free (issue 20)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _api_modules() -> list[str]:
    """The modules of the Makefile's ``docs`` target: the test builds what ``make docs`` does."""
    match = re.search(r"^API_MODULES := (.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert match, "the Makefile has no API_MODULES line"
    return match.group(1).split()


@pytest.mark.slow  # imports TensorFlow and every public module in a subprocess: ~30-60 s
def test_pdoc_builds_the_api_reference_without_warnings(tmp_path):
    env = dict(os.environ, PDOC_ALLOW_EXEC="1", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-m", "pdoc", "--docformat", "google", "-o", str(tmp_path)]
        + _api_modules(),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    # pdoc reports problems (unresolvable references, bad docstrings, import side effects) as
    # "Warn:" / "Error:" lines or Python warnings on stderr.
    problems = [
        line
        for line in result.stderr.splitlines()
        if re.search(r"\b(Warn|Warning|Error)\b", line) and "cuda" not in line.lower()
    ]
    assert not problems, "\n".join(problems)
    for page in ("index.html", "tf_bng.html", "tf_bng/training.html", "tf_bng/wrappers.html"):
        assert (tmp_path / page).is_file(), page
    # The Google-style sections are rendered, not shown as plain text.
    selectors_page = (tmp_path / "tf_bng" / "selectors.html").read_text()
    assert "deserialize_selector" in selectors_page and "Raises" in selectors_page
