"""Which benchmark results describe today's code: each results file, its commit, and whether what it measures
has changed since.

    python -m benchmarks.status              # a table on stdout
    python -m benchmarks.status --check      # and exit 1 if any result is stale or of unknown commit (not a record)

What a results file measures is its benchmark module and every first-party module that one reaches
through the import graph (imports anywhere in a module, lazy ones too, and module names written as strings,
such as `"app.cli"` started in a subprocess or `"benchmarks.bare_endpoint:app"` handed to uvicorn), found
by reading the sources of today's tree with `ast`; the modules that only record and show results
(provenance, status, tables) are left out. A file is **fresh** when none of those files differs between
its commit and HEAD in its code and its run was on a clean tree, **stale** when one does (they are listed),
and **unknown** when it records no commit (results from before provenance was kept) or one this
repository does not have. A run kept in parts (`--add`) is as fresh as its oldest part.

A results file may say of itself that it is a **record** (a top-level `"record"`: why it is kept): the account
of a past decision made on the code of its day, such as the search that chose today's defaults, which the
benchmarks that measure those defaults on today's code (`defaults.json`) do not replace. A record makes no
claim about today's code, so it is neither fresh nor stale; `--check` passes it, and the table says why it is
kept. A result that only some hardware can re-run (`NEEDS`) says so in its row.

A Python file that `git diff` lists but whose code `ast` reads the same at both commits (its docstrings,
comments or layout changed, nothing that runs) does not make a result stale: it is named as a wording change,
so the table still says that something was touched. Only committed files are read that way; a run on a tree
with uncommitted changes to what it measures is stale whatever they were.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.provenance import REPO, UNKNOWN

RESULTS = REPO / "benchmarks" / "results"
FIRST_PARTY = ("app", "benchmarks", "scripts", "workers", "tests")
REPORTING = {"benchmarks.provenance", "benchmarks.status", "benchmarks.tables"}
# results files whose benchmark module is not benchmarks.<stem>, for files that do not record it
MEASURED_BY = {"defaults_search": "benchmarks.defaults"}
# benchmarks whose results this machine may be unable to re-run, and what they need
NEEDS = {"benchmarks.gpu_checks": "a CUDA GPU (tests/unit/test_cuda.py and python -m benchmarks.gpu_checks "
                                  "--device cuda)"}
MODULE_NAME = re.compile(r"^(?:" + "|".join(FIRST_PARTY) + r")(?:\.[A-Za-z_]\w*)+(?::[A-Za-z_]\w*)?$")


def module_file(name: str, root: Path = REPO) -> Path | None:
    """The source of a first-party module (a .py file or a package's __init__.py), if it exists."""
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def imports_of(name: str, root: Path = REPO) -> set[str]:
    """First-party modules that module `name` imports (anywhere in its body) or names in a string."""
    path = module_file(name, root)
    if path is None:
        return set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_NAME.match(node.value):
            found.add(node.value.split(":")[0])
    return {m for n in found if n.split(".")[0] in FIRST_PARTY for m in _with_parents(n)
            if module_file(m, root) is not None}


def measured_modules(module: str, root: Path = REPO) -> set[str]:
    """`module` and everything first-party it reaches, reporting modules left out."""
    seen: set[str] = set()
    # `python -m package` runs the package's __main__, which its __init__ need not import.
    todo = [m for m in [*_with_parents(module), f"{module}.__main__"] if module_file(m, root)]
    while todo:
        name = todo.pop()
        if name in seen or name in REPORTING:
            continue
        seen.add(name)
        todo.extend(imports_of(name, root) - seen)
    return seen


def measured_files(module: str, root: Path = REPO) -> list[str]:
    return sorted(str(module_file(m, root).relative_to(root)) for m in measured_modules(module, root))  # type: ignore[union-attr]


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=60)


def code_of(source: str) -> str | None:
    """What runs in a Python source, as `ast` reads it with every docstring taken out: the same for two sources
    that differ only in docstrings, comments or layout. None for a source that does not parse."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            docstring = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            if docstring and isinstance(first.value.value, str):
                node.body = node.body[1:] or [ast.Pass()]
    return ast.dump(tree)


def _same_code(path: str, before: str, after: str) -> bool:
    if not path.endswith(".py"):
        return False
    old, new = (_git("show", f"{commit}:{path}") for commit in (before, after))
    if old.returncode or new.returncode:
        return False  # added or removed
    code = code_of(old.stdout)
    return code is not None and code == code_of(new.stdout)


@dataclass
class Changes:
    """Files among those a result measures that differ between two commits: in their code, or only in wording."""
    code: list[str]
    wording: list[str]


def changed_between(before: str, after: str, files: list[str]) -> Changes | None:
    """How `files` differ from commit `before` to `after`; None if either is not in this repository."""
    for commit in (before, after):
        if _git("cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
            return None
    done = _git("diff", "--name-only", before, after, "--", *files)
    if done.returncode != 0:
        return None
    changes = Changes([], [])
    for path in sorted(done.stdout.split()):
        (changes.wording if _same_code(path, before, after) else changes.code).append(path)
    return changes


@dataclass
class Status:
    results: str
    module: str
    commit: str | None
    date: str | None
    command: str | None
    state: str  # fresh, stale, unknown or record
    reasons: list[str] = field(default_factory=list)


def module_for(stem: str, entry: dict | None) -> str:
    recorded = (entry or {}).get("module")
    return recorded or MEASURED_BY.get(stem, f"benchmarks.{stem}")


def status_of(path: Path) -> Status:
    """One results file's status (see the module's docstring)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        return Status(path.name, "?", None, None, None, "unknown", [f"unreadable: {error}"])
    entry = data.get("provenance") if isinstance(data, dict) else None
    module = module_for(path.stem, entry)
    status = Status(path.name, module, (entry or {}).get("commit"), (entry or {}).get("date"),
                    (entry or {}).get("command"), "fresh")
    if isinstance(data, dict) and data.get("record"):
        status.state, status.reasons = "record", [f"kept as a record: {data['record']}"]
        return status
    _read_runs(status, entry, measured_files(module))
    if status.state != "fresh" and module in NEEDS:
        status.reasons.append(f"re-running it needs {NEEDS[module]}")
    status.reasons = list(dict.fromkeys(status.reasons))  # parts run on one commit say the same thing once
    return status


def _read_runs(status: Status, entry: dict | None, files: list[str]) -> None:
    """Mark `status` stale or unknown, with the reasons, from each run of the result (its parts too)."""
    runs = [entry or {}, *(entry or {}).get("parts", [])]
    for run in runs:
        commit = run.get("commit")
        if not commit:
            status.state = "unknown"
            status.reasons.append(f"{UNKNOWN}" + (" (an earlier part)" if run is not runs[0] else ""))
            continue
        changed = changed_between(commit, "HEAD", files)
        if changed is None:
            status.state = "unknown"
            status.reasons.append(f"commit {commit[:12]} is not in this repository")
            continue
        dirty = sorted(set(run.get("changed_files", [])) & set(files))
        moved = Changes([], [])
        if run.get("commit_at_end"):  # HEAD moved while it ran: what moved between the two counts too
            moved = changed_between(commit, run["commit_at_end"], files) or Changes(files, [])
        if changed.code or dirty or moved.code:
            status.state = "unknown" if status.state == "unknown" else "stale"
        if changed.code:
            status.reasons.append(f"changed since {commit[:12]}: {_some(changed.code)}")
        if changed.wording:
            status.reasons.append(f"only docstrings or comments changed since {commit[:12]}: {_some(changed.wording)}")
        if dirty:
            status.reasons.append(f"ran with uncommitted changes to {_some(dirty)}")
        if moved.code:
            status.reasons.append(f"HEAD moved while it ran, changing {_some(moved.code)}")


def _some(files: list[str], shown: int = 5) -> str:
    """A file list short enough for a table cell: the benchmark's own files first, then the first few of the
    app's, and how many more (`git diff` lists them all)."""
    ordered = sorted(files, key=lambda name: not name.startswith("benchmarks/"))
    more = len(ordered) - shown
    return ", ".join(ordered[:shown]) + (f" and {more} more" if more > 0 else "")


def statuses(results: Path = RESULTS) -> list[Status]:
    return [status_of(path) for path in sorted(results.glob("*.json"))]


def markdown_table(rows: list[Status]) -> str:
    head = _git("rev-parse", "--short=12", "HEAD").stdout.strip()
    lines = [f"Status against commit `{head}` (`python -m benchmarks.status`):", "",
             "| results | benchmark | commit | date | status | why |", "|---|---|---|---|---|---|"]
    for row in rows:
        shown = "; ".join(row.reasons) if row.reasons else "nothing it measures changed since"
        lines.append(f"| `{row.results}` | `{row.module}` | {f'`{row.commit[:12]}`' if row.commit else UNKNOWN} | "
                     f"{(row.date or '')[:10]} | **{row.state}** | {shown} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if any result is stale or unknown (a record passes)")
    args = parser.parse_args()
    rows = statuses(args.results)
    print(markdown_table(rows), end="")
    if args.check and any(row.state not in ("fresh", "record") for row in rows):
        raise SystemExit(1)


if __name__ == "__main__":
    sys.exit(main())
