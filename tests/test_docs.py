"""The documentation's code runs: every ```python block of the tutorial, the reference and
the how-to guides.

Each page's blocks run in order, in one fresh Python process per page, so names defined in
one block are there for the next (as when a reader pastes them one after another into a
file). Blocks that must not run (an error's output, a shell session) use another fence
language (```pycon, ```text, ```console).

The blocks are written into a script at the same line numbers they have in the page (every
other line blank), so a traceback's line numbers point into the page. A page that contains
the marker ``<!-- doc-test: pytest -->`` is a test module: its script runs under pytest.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PAGES = [
    "docs/tutorial.md",
    "docs/reference.md",
    "docs/how-to/handle-failures.md",
    "docs/how-to/large-data.md",
    "docs/how-to/test-your-code.md",
    "docs/how-to/debug-a-hang.md",
]

PYTEST_MARKER = "<!-- doc-test: pytest -->"

# A ```python fence at the start of a line, up to the next closing fence.
_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)


def page_script(text: str) -> str:
    """The page's python blocks as one script, each line at its line number in the page."""
    lines = [""] * (text.count("\n") + 1)
    for m in _BLOCK.finditer(text):
        first = text.count("\n", 0, m.start(1))
        for i, line in enumerate(m.group(1).splitlines()):
            lines[first + i] = line
    return "\n".join(lines).rstrip() + "\n"


def test_page_script_keeps_line_numbers() -> None:
    text = "# T\n\n```python\nx = 1\n```\n\n```pycon\n>>> 1/0\n```\n```python\nprint(x)\n```\n"
    script = page_script(text).splitlines()
    assert script[3] == "x = 1" and script[10] == "print(x)"
    assert "1/0" not in "\n".join(script)


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_page_runs(page: str, tmp_path: Path) -> None:
    text = (ROOT / page).read_text()
    script = page_script(text)
    assert script.strip(), f"{page} has no ```python block"
    as_tests = PYTEST_MARKER in text
    stem = Path(page).stem.replace("-", "_")
    path = tmp_path / (f"test_{stem}.py" if as_tests else f"{stem}.py")
    path.write_text(script)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "IRIS_"))}
    # A private state directory: `iris status` and address="auto" see this page's cluster
    # only, not those of other tests running on the machine. Warnings are errors, as in
    # this project's own tests.
    env["IRIS_STATE_DIR"] = str(tmp_path / "state")
    cmd = [sys.executable, "-W", "error", str(path)]
    if as_tests:
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error",
               str(path)]
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=100)
    assert out.returncode == 0, (
        f"{page}: exit code {out.returncode} (line numbers below are the page's)\n"
        f"--- stdout\n{out.stdout[-4000:]}\n--- stderr\n{out.stderr[-6000:]}")
