"""What a benchmark ran on: the commit, whether the work tree was clean, the command, the machine, the date.

Every benchmark writes its results through `write_results`, which records this as the JSON's `provenance`
and shows it in the first lines of the markdown beside it, so that a figure can always be traced to the
code that produced it. `benchmarks.status` reads it back to tell which results describe today's code,
and `benchmarks.tables` quotes it above the docs' tables.

A run that adds to earlier results (`--add`, `--parts`, one backbone of several) keeps the earlier runs'
provenance under `parts`: the file then describes the oldest of them. Results recorded before provenance
was kept have none; they are shown as "unknown commit" (never guessed).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
UNKNOWN = "unknown commit"


def _git(*args: str, cwd: Path = REPO) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def cpu_model() -> str:
    """The CPU's model name, as /proc/cpuinfo gives it (else what platform knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """The CPU, its count, the OS, Python and torch, and the GPU where torch sees one."""
    entry: dict[str, Any] = {"host": platform.node(), "cpu": cpu_model(), "cpus": os.cpu_count(),
                             "platform": platform.platform(), "python": platform.python_version()}
    torch = sys.modules.get("torch")  # only where the benchmark imported it: a run that never did needs no GPU line
    if torch is not None:
        entry["torch"] = torch.__version__
        if torch.cuda.is_available():
            entry["gpu"] = torch.cuda.get_device_name(0)
    return entry


def _module_of(argv0: str) -> str | None:
    """`python -m benchmarks.x` runs benchmarks/x.py (or benchmarks/x/__main__.py): its module name."""
    try:
        relative = Path(argv0).resolve().relative_to(REPO)
    except ValueError:
        return None
    parts = list(relative.with_suffix("").parts)
    if parts and parts[-1] == "__main__":
        parts.pop()
    return ".".join(parts) if parts and parts[0] == "benchmarks" else None


def command_line(argv: list[str] | None = None) -> str:
    argv = list(sys.argv if argv is None else argv)
    module = _module_of(argv[0]) if argv else None
    head = ["python", "-m", module] if module else ["python", argv[0] if argv else "?"]
    return shlex.join(head + argv[1:])


def provenance(argv: list[str] | None = None) -> dict[str, Any]:
    """This run's provenance, taken now (call it when the run starts, so that an edit made during a long run
    is not missed: `clean` is checked again when the results are written)."""
    argv = list(sys.argv if argv is None else argv)
    status = _git("status", "--porcelain", "--untracked-files=no")
    commit = _git("rev-parse", "HEAD")
    # results are what runs write, not code: a second benchmark after a first one still runs on a clean tree
    changed = sorted(line[3:] for line in (status or "").splitlines()
                     if line.strip() and not line[3:].startswith("benchmarks/results/"))
    return {
        "commit": commit.strip() if commit else None,
        "clean": status is not None and not changed,
        "changed_files": changed,
        "command": command_line(argv),
        "module": _module_of(argv[0]) if argv else None,
        "machine": machine(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def merged(current: dict[str, Any], earlier: dict[str, Any] | None) -> dict[str, Any]:
    """`current`, keeping the provenance of the earlier results it adds to (unknown where they had none), after
    the parts `current` already keeps: a merge of many runs folds them in one at a time, and keeps every one."""
    if earlier is None:
        return current
    old = earlier.get("provenance") or {"commit": None, "command": None, "date": None}
    parts = [*current.get("parts", []), *old.get("parts", []), {k: v for k, v in old.items() if k != "parts"}]
    return {**current, "parts": parts}


def describe(entry: dict[str, Any] | None) -> str:
    """One line: commit and cleanliness, command, machine, date."""
    if not entry or not entry.get("commit"):
        return (f"Provenance: {UNKNOWN} (these results were recorded before runs kept their commit, command "
                "and machine; `python -m benchmarks.status` reports them as unknown, never fresh).")
    tree = "work tree clean" if entry.get("clean") else \
        f"work tree **not clean**: {', '.join(entry.get('changed_files', [])) or 'changes'}"
    where = entry.get("machine", {})
    hardware = f"{where.get('cpu', '?')}, {where.get('cpus', '?')} CPUs"
    if where.get("gpu"):
        hardware += f", {where['gpu']}"
    software = ", ".join(f"{name} {where[name]}" for name in ("python", "torch") if where.get(name))
    line = (f"Provenance: commit `{entry['commit'][:12]}` ({tree}); `{entry.get('command')}`; "
            f"{hardware}; {software}; {entry.get('date')}.")
    parts = entry.get("parts", [])
    if parts:
        earlier = "; ".join(f"`{(p.get('commit') or UNKNOWN)[:12]}` `{p.get('command') or '?'}` "
                            f"{p.get('date') or ''}".strip() for p in parts)
        line += f" Earlier parts kept from: {earlier}."
    return line


def with_header(markdown: str, entry: dict[str, Any] | None) -> str:
    """The markdown with its provenance line under its title (or first, where it has no title)."""
    line = describe(entry)
    lines = markdown.splitlines()
    if lines and lines[0].startswith("# "):
        return "\n".join([lines[0], "", line, *lines[1:]]) + "\n"
    return "\n".join([line, "", *lines]) + "\n"


def finished(started: dict[str, Any] | None) -> dict[str, Any]:
    """The provenance of a run that began with `started` (default: now): a run during which the tree was
    edited, or HEAD moved, did not run on one clean commit, and says so."""
    entry = dict(started or provenance())
    now = provenance() if started else entry
    if entry.get("commit") != now.get("commit"):
        entry["commit_at_end"] = now.get("commit")
    if now is not entry:
        entry["clean"] = bool(entry.get("clean")) and now["clean"] and entry.get("commit") == now.get("commit")
        entry["changed_files"] = sorted({*entry.get("changed_files", []), *now["changed_files"]})
    return entry


def write_results(out: Path, stem: str, results: dict[str, Any], markdown: str | None, *,
                  started: dict[str, Any] | None = None, earlier: dict[str, Any] | None = None,
                  indent: int = 1) -> None:
    """Write `<stem>.json` with this run's provenance and `<stem>.md` with its provenance line.

    `started`: the provenance taken when the run began (default: now). `earlier`: the results this run adds
    to, whose provenance is kept under `parts`."""
    results["provenance"] = merged(finished(started), earlier)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(results, indent=indent, default=str) + "\n")
    if markdown is not None:
        (out / f"{stem}.md").write_text(with_header(markdown, results["provenance"]))


def merge_runs(paths: list[Path], out: Path, stem: str, join: Callable[[dict[str, Any], dict[str, Any]], None],
               markdown: Callable[[dict[str, Any]], str]) -> None:
    """One `<stem>` results file from runs made side by side (its JSON in each of `paths`, of one profile and
    settings): the first run's results and provenance, `join(results, other)` folding in each other run,
    whose provenance goes under `parts`."""
    runs = [json.loads((path / f"{stem}.json").read_text()) for path in paths]
    results = runs[0]
    for other in runs[1:]:
        if other["settings"] != results["settings"] or other["profile"] != results["profile"]:
            raise SystemExit("the runs differ in profile or settings")
        join(results, other)
        results["provenance"] = merged(results["provenance"], other)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    (out / f"{stem}.md").write_text(with_header(markdown(results), results["provenance"]))
    print(f"wrote {out / f'{stem}.json'} and {out / f'{stem}.md'}")


def write_markdown(out: Path, stem: str, results: dict[str, Any], markdown: str) -> None:
    """Rewrite only `<stem>.md` from results already written (their provenance, or "unknown commit")."""
    (out / f"{stem}.md").write_text(with_header(markdown, results.get("provenance")))
