"""mkdocs hooks: the site's home page is README.md, and pages may show the committed results/ figures.

Both live outside ``docs/`` so that GitHub shows them where they are: README.md links the pages as
``docs/X.md`` and the pages show figures as ``../results/...png``. Here README.md becomes ``index.md``'s
text with its ``docs/`` prefixes dropped, the figures a page shows are added to the site under
``results/``, and the pages' ``../results/`` links point there.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
FIGURE = re.compile(r"\]\(\.\./(results/[^)\s]+\.png)\)")


def on_files(files: Files, config) -> Files:
    shown = set()
    for page in (ROOT / "docs").glob("*.md"):
        shown.update(FIGURE.findall(page.read_text()))
    for rel in sorted(shown):
        files.append(File.generated(config, rel, abs_src_path=str(ROOT / rel)))
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    if page.file.src_uri == "index.md":
        return (ROOT / "README.md").read_text().replace("](docs/", "](")
    return FIGURE.sub(r"](\1)", markdown)
