"""The documentation site builds in strict mode: a broken link, a page missing from the nav's files or a
plot the benchmarks no longer write fails here (mkdocs.yml, docs/hooks.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_docs_site_builds_strictly(tmp_path: Path) -> None:
    site = tmp_path / "site"
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)], cwd=REPO,
                           capture_output=True, text=True, timeout=120, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert built.returncode == 0, built.stdout + built.stderr
    assert (site / "benchmarks" / "index.html").exists()
    plots = {path.name for path in (REPO / "benchmarks" / "results").glob("*.png")}
    assert plots and plots == {path.name for path in (site / "results").glob("*.png")}
    # The benchmark page shows its plots from the site's copies, not from outside the site.
    page = (site / "benchmarks" / "index.html").read_text()
    assert "../results/continual_forgetting.png" in page and "benchmarks/results/continual_forgetting.png" not in page


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\n[gone](missing.md)\n")
    (tmp_path / "mkdocs.yml").write_text("site_name: t\ntheme:\n  name: material\n")
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=120, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert built.returncode != 0
    assert "missing.md" in built.stdout + built.stderr
