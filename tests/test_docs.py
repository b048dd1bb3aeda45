"""The documentation: ``mkdocs build --strict`` (mkdocs.yml: docs/*.md, README.md as the home page, the API
reference from the docstrings) builds without a warning, and README.md stays the short front door.

The commands and code blocks of README.md and docs/*.md are run by ``tests/test_readme.py``,
``tests/test_readme_loop.py`` and ``tests/test_torchrl.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_docs_site_builds_strict(tmp_path):
    site = tmp_path / "site"
    p = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)], cwd=ROOT,
                       env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, capture_output=True, text=True, timeout=300)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-4000:]
    assert "WARNING" not in out, out[-4000:]
    pages = sorted(f.stem for f in (ROOT / "docs").glob("*.md"))
    for page in pages:   # every page built (a page left out of mkdocs.yml's nav is a warning above)
        assert (site / ("index.html" if page == "index" else f"{page}/index.html")).is_file(), page
    home = (site / "index.html").read_text()
    assert "Your own loop" in home and 'href="speed/"' in home   # README.md, its docs/ links resolved
    api = (site / "api" / "index.html").read_text()
    assert "MinibatchSampler" in api and "Trainer" in api         # the docstrings rendered
    assert list((site / "results").rglob("*.png"))                # the results' figures travel with the site


def test_readme_is_the_front_door():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) < 250, f"README.md has {len(lines)} lines: move detail to docs/"
    text = "\n".join(lines)
    for page in sorted((ROOT / "docs").glob("*.md")):
        if page.stem != "index":
            assert f"(docs/{page.name})" in text, f"README.md does not link docs/{page.name}"
