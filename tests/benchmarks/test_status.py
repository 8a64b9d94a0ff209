"""benchmarks.status and benchmarks.provenance: what a results file records, and how its staleness is read."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from benchmarks import provenance, status

REPO = provenance.REPO


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()


def _results(tmp_path: Path, entry: dict | None) -> Path:
    path = tmp_path / "real_models.json"
    path.write_text(json.dumps({"cases": {}} | ({"provenance": entry} if entry else {})))
    return path


def test_provenance_records_commit_tree_command_machine_and_date(tmp_path: Path) -> None:
    entry = provenance.provenance([str(REPO / "benchmarks" / "real_models.py"), "--profile", "smoke"])
    assert entry["commit"] == _git("rev-parse", "HEAD") and isinstance(entry["clean"], bool)
    assert entry["command"] == "python -m benchmarks.real_models --profile smoke"
    assert entry["module"] == "benchmarks.real_models"
    assert entry["machine"]["cpus"] and entry["machine"]["cpu"] and entry["date"][:2] == "20"
    provenance.write_results(tmp_path, "x", {"a": 1}, "# Title\n\nbody\n", started=entry)
    written = json.loads((tmp_path / "x.json").read_text())
    assert written["provenance"]["commit"] == entry["commit"] and written["a"] == 1
    lines = (tmp_path / "x.md").read_text().splitlines()
    assert lines[0] == "# Title" and lines[2].startswith(f"Provenance: commit `{entry['commit'][:12]}`")
    assert "python -m benchmarks.real_models --profile smoke" in lines[2] and entry["date"] in lines[2]


def test_a_run_that_adds_to_earlier_results_keeps_their_provenance() -> None:
    now = {"commit": "b" * 40, "clean": True, "command": "python -m benchmarks.paper --add", "date": "2026-12-02"}
    kept = provenance.merged(now, {"provenance": {"commit": "a" * 40, "command": "old", "date": "2026-12-01"}})
    assert kept["commit"] == "b" * 40 and [p["commit"] for p in kept["parts"]] == ["a" * 40]
    unknown = provenance.merged(now, {"backbones": {}})
    assert unknown["parts"][0]["commit"] is None and "unknown commit" in provenance.describe(None)
    third = provenance.merged(kept, {"provenance": {"commit": "c" * 40, "command": "third", "date": "2026-12-03",
                                                    "parts": [{"commit": "d" * 40, "command": "its own part"}]}})
    assert [p["commit"] for p in third["parts"]] == ["a" * 40, "d" * 40, "c" * 40]  # none dropped, in order


def test_a_merge_of_many_runs_keeps_every_runs_provenance(tmp_path: Path) -> None:
    for index in range(3):
        (tmp_path / str(index)).mkdir()
        (tmp_path / str(index) / "x.json").write_text(json.dumps({
            "profile": "p", "settings": {}, "n": [index],
            "provenance": {"commit": str(index) * 40, "clean": True, "command": f"run {index}", "date": "2026-12-07"}}))
    provenance.merge_runs([tmp_path / str(i) for i in range(3)], tmp_path / "out", "x",
                          lambda results, other: results["n"].extend(other["n"]), lambda results: "# X\n")
    merged = json.loads((tmp_path / "out" / "x.json").read_text())
    assert merged["n"] == [0, 1, 2] and merged["provenance"]["command"] == "run 0"
    assert [part["command"] for part in merged["provenance"]["parts"]] == ["run 1", "run 2"]


def test_the_import_graph_follows_lazy_imports_relative_imports_and_module_names_in_strings(tmp_path: Path) -> None:
    for name, text in {
        "benchmarks/__init__.py": "", "benchmarks/b.py": "def f():\n    from app import c\n",
        "benchmarks/provenance.py": "import app.unused\n", "app/__init__.py": "",
        "app/c.py": "from . import d\nCOMMAND = ['-m', 'app.e']\n", "app/d.py": "import os\n", "app/e.py": "",
        "app/unused.py": "", "benchmarks/a.py": "import benchmarks.b\nfrom benchmarks import provenance\n",
    }.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert status.measured_files("benchmarks.a", tmp_path) == [
        "app/__init__.py", "app/c.py", "app/d.py", "app/e.py",
        "benchmarks/__init__.py", "benchmarks/a.py", "benchmarks/b.py"]  # provenance (reporting) left out
    # A package run with `python -m` measures what its __main__ reaches, which its __init__ need not import.
    (tmp_path / "benchmarks/pkg").mkdir()
    (tmp_path / "benchmarks/pkg/__init__.py").write_text("")
    (tmp_path / "benchmarks/pkg/__main__.py").write_text("from app import d\n")
    assert status.measured_files("benchmarks.pkg", tmp_path) == [
        "app/__init__.py", "app/d.py", "benchmarks/__init__.py", "benchmarks/pkg/__init__.py",
        "benchmarks/pkg/__main__.py"]


def test_results_are_fresh_stale_or_unknown(tmp_path: Path) -> None:
    assert status.status_of(_results(tmp_path, None)).state == "unknown"
    head = _git("rev-parse", "HEAD")
    fresh = status.status_of(_results(tmp_path, {"commit": head, "clean": True, "module": "benchmarks.real_models"}))
    assert fresh.state == "fresh" and fresh.reasons == []
    # the last commit that changed real_models.py's imports, so a change to its code
    touched = _git("log", "-1", "--format=%H", "-G", "^(from|import) ", "--", "benchmarks/real_models.py")
    stale = status.status_of(_results(tmp_path, {"commit": f"{touched}~1", "clean": True}))
    assert stale.state == "stale" and "benchmarks/real_models.py" in stale.reasons[0]
    dirty = status.status_of(_results(tmp_path, {"commit": head, "clean": False,
                                                 "changed_files": ["app/mas/training.py", "docs/x.md"]}))
    assert dirty.state == "stale" and dirty.reasons == ["ran with uncommitted changes to app/mas/training.py"]
    elsewhere = status.status_of(_results(tmp_path, {"commit": head, "clean": False, "changed_files": ["docs/x.md"]}))
    assert elsewhere.state == "fresh"
    assert status.status_of(_results(tmp_path, {"commit": "0" * 40, "clean": True})).state == "unknown"
    table = status.markdown_table([stale, fresh])
    assert "| `real_models.json` | `benchmarks.real_models` |" in table and "**stale**" in table


def test_a_record_is_neither_fresh_nor_stale_and_says_why_it_is_kept(tmp_path: Path) -> None:
    record = tmp_path / "defaults_search.json"
    record.write_text(json.dumps({"record": "the search that chose the defaults", "rows": []}))
    row = status.status_of(record)
    assert row.state == "record" and row.reasons == ["kept as a record: the search that chose the defaults"]
    assert "**record**" in status.markdown_table([row])
    # without the key the same file, which records no commit, is unknown; a GPU benchmark's row says what it needs
    record.write_text(json.dumps({"rows": []}))
    assert status.status_of(record).state == "unknown"
    gpu = tmp_path / "gpu_checks.json"
    gpu.write_text(json.dumps({"sections": {}}))
    assert status.status_of(gpu).reasons[-1].startswith("re-running it needs a CUDA GPU")


def test_check_fails_on_stale_or_unknown_results_and_passes_records(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "kept.json").write_text(json.dumps({"record": "why"}))
    monkeypatch.setattr("sys.argv", ["status", "--results", str(tmp_path), "--check"])
    status.main()  # a record alone passes
    (tmp_path / "old.json").write_text(json.dumps({"rows": []}))
    with pytest.raises(SystemExit):
        status.main()


def test_a_change_to_docstrings_or_comments_alone_leaves_the_code_the_same() -> None:
    source = 'def f(x):\n    """Doubles."""\n    return 2 * x  # twice\n'
    assert status.code_of(source) == status.code_of('def f(x):\n    """Twice x."""\n\n    return 2*x\n')
    assert status.code_of(source) == status.code_of("def f(x):\n    return 2 * x\n")
    assert status.code_of(source) != status.code_of('def f(x):\n    """Doubles."""\n    return 3 * x\n')
    assert status.code_of(source) != status.code_of('def f(x):\n    """Doubles."""\n    return "2 * x"\n')
    assert status.code_of("def f(:\n") is None


def test_a_result_whose_files_changed_only_in_wording_stays_fresh_and_says_so() -> None:
    # The commit that gave real_models.py's blind except a noqa comment and changed nothing else in it.
    commented = _git("log", "-1", "--format=%H", "--grep", "ruff selects BLE")
    changes = status.changed_between(f"{commented}~1", commented, ["benchmarks/real_models.py"])
    assert changes == status.Changes(code=[], wording=["benchmarks/real_models.py"])
    coded = _git("log", "-1", "--format=%H", "-G", "^(from|import) ", "--", "benchmarks/real_models.py")
    assert status.changed_between(f"{coded}~1", coded, ["benchmarks/real_models.py"]).code == [
        "benchmarks/real_models.py"]
    assert status.changed_between("0" * 40, coded, ["benchmarks/real_models.py"]) is None
