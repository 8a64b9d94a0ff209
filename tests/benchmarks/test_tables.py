"""benchmarks.tables: the docs' benchmark tables are what the committed results give, and nothing else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import tables


def test_every_table_of_the_docs_page_is_generated_from_the_committed_results() -> None:
    text = tables.DOCS.read_text()
    names = [m["name"] for m in tables.REGION.finditer(text)]
    assert set(names) >= set(tables.GENERATORS) - {"shadow_latency"} | {"status"} and len(names) == len(set(names))
    assert tables.regenerate(text, skip=frozenset({"status"})) == text, "run python -m benchmarks.tables"
    outside = tables.REGION.sub("", text)
    typed = [line for line in outside.splitlines() if line.startswith("|---")]
    assert typed == [], "a table typed by hand outside the generated regions"


def test_every_other_page_with_a_region_is_what_the_results_give() -> None:
    for page in (page for page in tables.PAGES if page != tables.DOCS):  # DOCS: the test above
        text = page.read_text()
        assert tables.REGION.search(text), f"{page} is listed but holds no generated region"
        assert tables.regenerate(text, skip=frozenset({"status"})) == text, f"{page}: run python -m benchmarks.tables"


def test_a_region_shows_its_results_table_under_their_provenance(tmp_path: Path) -> None:
    (tmp_path / "speed.json").write_text(json.dumps({"provenance": {"commit": "abc" * 14, "date": "2026-12-04T10:00"}}))
    (tmp_path / "speed.md").write_text("# Speed\n\n## Training step, batch 64\n\ntext\n\n| a | b |\n|---|---|\n"
                                       "| 1 | 2 |\n\nafter\n\n## Against the targets\n\n| x |\n|---|\n")
    page = "intro\n<!-- generated: speed.training -->\nold\n<!-- end generated: speed.training -->\nend\n"
    assert tables.regenerate(page, tmp_path) == (
        "intro\n<!-- generated: speed.training -->\n*From `benchmarks/results/speed.json`: commit `abcabcabcabc`, "
        "2026-12-04.*\n\n| a | b |\n|---|---|\n| 1 | 2 |\n<!-- end generated: speed.training -->\nend\n")
    with pytest.raises(KeyError, match="no generator"):
        tables.regenerate("<!-- generated: nothing -->\n<!-- end generated: nothing -->", tmp_path)
