"""The docs' benchmark tables (docs/benchmarks.md and the PAGES beside it), generated from the committed results.

    python -m benchmarks.tables            # rewrites every generated region of the docs' pages
    python -m benchmarks.tables --check    # exit 1 if a region differs from what the results give

A region is the text between `<!-- generated: NAME -->` and `<!-- end generated: NAME -->`; NAME picks a
generator below. Some regions are a table of a results markdown (`benchmarks/results/*.md`, itself written
from its JSON by the benchmark: the table under a heading), the others are computed here from the JSON in
the forms the page compares across networks and sequences. Each region starts with the provenance of the
results it shows; `status` is `python -m benchmarks.status`'s table, as of the commit it was generated at.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

from benchmarks import status
from benchmarks.provenance import REPO, UNKNOWN

RESULTS = REPO / "benchmarks" / "results"
DOCS = REPO / "docs" / "benchmarks.md"
# other pages that show a results table where their reader looks for it (the same generators)
PAGES: tuple[Path, ...] = (DOCS, REPO / "docs" / "deployment.md")
REGION = re.compile(r"(<!-- generated: (?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- end generated: (?P=name) -->)",
                    re.DOTALL)


def load(stem: str, results: Path = RESULTS) -> dict:
    return json.loads((results / f"{stem}.json").read_text())


def source_line(stem: str, results: Path = RESULTS) -> str:
    """Where a region's figures come from: the file, its commit and date."""
    entry = load(stem, results).get("provenance") or {}
    commit = f"commit `{entry['commit'][:12]}`" if entry.get("commit") else UNKNOWN
    when = f", {entry['date'][:10]}" if entry.get("date") else ""
    parts = f" (and earlier parts: {len(entry['parts'])})" if entry.get("parts") else ""
    return f"*From `benchmarks/results/{stem}.json`: {commit}{when}{parts}.*"


def markdown_table(stem: str, heading: str, results: Path = RESULTS) -> str:
    """The first table under the heading of `<stem>.md` that contains `heading` (before the next heading)."""
    lines = (results / f"{stem}.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("#") and heading in line)
    table: list[str] = []
    for line in lines[start + 1:]:
        if line.startswith("#") and table == []:
            break
        if line.startswith("|"):
            table.append(line)
        elif table:
            break
    if not table:
        raise ValueError(f"no table under a heading with {heading!r} in {stem}.md")
    return "\n".join(table)


def heading_text(stem: str, heading: str, results: Path = RESULTS) -> str:
    line = next(line for line in (results / f"{stem}.md").read_text().splitlines()
                if line.startswith("#") and heading in line)
    return line.lstrip("#").strip()


def included(stem: str, *headings: str) -> Callable[[Path], str]:
    """The tables under these headings of `<stem>.md`; several are each labelled with their heading."""
    def generate(results: Path) -> str:
        tables = [markdown_table(stem, h, results) for h in headings]
        if len(headings) > 1:
            tables = [f"**{heading_text(stem, h, results)}**\n\n{t}" for h, t in zip(headings, tables, strict=True)]
        return "\n\n".join([source_line(stem, results), *tables])
    return generate


# --- continual ----------------------------------------------------------------------------------------

CONTINUAL_METHODS = ["finetune", "l2", "ewc", "si", "lwf", "mas", "mas_auto", "mas_omega_test", "mas_local"]


def continual_summary(results: Path) -> str:
    data = load("continual", results)
    lines = ["| sequence | " + " | ".join(CONTINUAL_METHODS) + " |", "|---" * (len(CONTINUAL_METHODS) + 1) + "|"]
    for name, variants in data["sequences"].items():
        cells = [f"{variants[m]['summary']['average_accuracy']['mean']:.3f} / "
                 f"{variants[m]['summary']['forgetting']['mean']:.3f}" if m in variants else "–"
                 for m in CONTINUAL_METHODS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return source_line("continual", results) + "\n\n" + "\n".join(lines)


def continual_auto(results: Path) -> str:
    data = load("continual", results)
    lines = ["| sequence | `mas`, λ in hindsight | avg acc | forgetting | new task vs FT | `mas_auto` avg acc | "
             "forgetting | new task vs FT |", "|---|---|---|---|---|---|---|---|"]
    for name, variants in data["sequences"].items():
        cells = [f"{variants['mas']['lambda']:g}"]
        for method in ("mas", "mas_auto"):
            summary = variants[method]["summary"]
            accuracy = summary["average_accuracy"]
            cells += [f"{accuracy['mean']:.3f} ± {accuracy['std']:.3f}", f"{summary['forgetting']['mean']:.3f}",
                      f"{summary['new_task_accuracy_vs_finetune']['mean']:.3f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return source_line("continual", results) + "\n\n" + "\n".join(lines)


# --- the paper's experiments ------------------------------------------------------------------------

PAPER_BACKBONES = {"cnn": "CNN", "efficientnet": "EfficientNet", "minilm": "MiniLM"}
PAPER_METHODS = ["finetune", "lwf", "ewc", "si", "l2", "mas", "mas_auto", "mas_block", "mas_attention", "mas_blend",
                 "ewc_blend"]


def _signed(points: float) -> str:
    return "±0.0" if round(points, 1) == 0 else f"{points:+.1f}".replace("-", "−")


def _paper_header() -> list[str]:
    return ["| method | " + " | ".join(PAPER_BACKBONES.values()) + " |", "|---" * (len(PAPER_BACKBONES) + 1) + "|"]


def paper_transfers(results: Path) -> str:
    """Mean over each backbone's transfers: the first task's change in points · the second task's accuracy."""
    data = load("paper", results)
    lines = _paper_header()
    for method in PAPER_METHODS:
        cells = []
        for backbone in PAPER_BACKBONES:
            sequences = data["backbones"][backbone]["sequences"]
            pairs = [s["variants"][method]["summary"] for name, s in sequences.items()
                     if "__" in name and method in s["variants"]]
            if not pairs:  # a variant for some networks only (mas_attention), or from before it existed
                cells.append("–")
                continue
            change = -100 * statistics.fmean(p["first_drop"]["mean"] for p in pairs)
            second = 100 * statistics.fmean(p["second"]["mean"] for p in pairs)
            cells.append(f"{_signed(change)} · {second:.1f}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return source_line("paper", results) + "\n\n" + "\n".join(lines)


def paper_eight(results: Path) -> str:
    """mixed_8: average accuracy ± std / mean points lost by tasks 1–7 since learned (λ where chosen)."""
    data = load("paper", results)
    lines = _paper_header()
    for method in PAPER_METHODS:
        cells = []
        for backbone in PAPER_BACKBONES:
            variant = data["backbones"][backbone]["sequences"]["mixed_8"]["variants"].get(method)
            if variant is None:
                cells.append("–")
                continue
            summary = variant["summary"]
            lost = 100 * statistics.fmean(d["mean"] for d in list(summary["drop"].values())[:-1])
            lam = variant.get("lambda")
            chosen = f" (λ {lam:g})" if isinstance(lam, int | float) and method not in ("finetune",) else ""
            cells.append(f"{100 * summary['average_accuracy']['mean']:.1f} ± "
                         f"{100 * summary['average_accuracy']['std']:.1f} / {lost:.1f}{chosen}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return source_line("paper", results) + "\n\n" + "\n".join(lines)


TABLE3 = {"mas": "Ω on train (MAS)", "mas_omega_test": "Ω on unlabeled eval (deployment)",
          "mas_omega_both": "Ω on train + eval", "mas_local": "local (Hebbian)", "mas_vector": "vector output"}


def paper_table3(results: Path) -> str:
    """The 5-task sequence: average accuracy ± std / forgetting in points, per variant of Ω."""
    data = load("paper", results)
    lines = ["| Ω | " + " | ".join(PAPER_BACKBONES.values()) + " |", "|---" * (len(PAPER_BACKBONES) + 1) + "|"]
    for variant, label in TABLE3.items():
        cells = []
        for backbone in PAPER_BACKBONES:
            entry = data["backbones"][backbone]["sequences"]["five"]["variants"].get(variant)
            if entry is None:
                cells.append("not available¹")
                continue
            summary = entry["summary"]
            cells.append(f"{100 * summary['average_accuracy']['mean']:.1f} ± "
                         f"{100 * summary['average_accuracy']['std']:.1f} / {100 * summary['forgetting']['mean']:.1f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return source_line("paper", results) + "\n\n" + "\n".join(lines)


def status_table(results: Path) -> str:
    return status.markdown_table(status.statuses(results)).rstrip("\n")


def _sourced_first_table(stem: str, results: Path) -> str:
    return source_line(stem, results) + "\n\n" + _first_table(stem, results)


def _first_table(stem: str, results: Path) -> str:
    lines = (results / f"{stem}.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return "\n".join(lines[start:end])


GENERATORS: dict[str, Callable[[Path], str]] = {
    "status": status_table,
    "continual": continual_summary,
    "continual.auto": continual_auto,
    "defaults": included("defaults", "Which settings meet both targets"),
    "defaults_search": included("defaults_search", "Which settings meet both targets"),
    "defaults_pretrained": included("defaults_pretrained", "Defaults that protect"),
    "fresh_sequences": partial(_sourced_first_table, "fresh_sequences"),
    "lambda_rules": partial(_sourced_first_table, "lambda_rules"),
    "lambda_rules_judged": partial(_sourced_first_table, "lambda_rules_judged"),
    "lambda_rules_grid": partial(_sourced_first_table, "lambda_rules_grid"),
    "head_warmup": partial(_first_table, "head_warmup/comparison"),
    "held_back": partial(_sourced_first_table, "held_back"),
    "held_back_judged": partial(_sourced_first_table, "held_back_judged"),
    "paper.transfers": paper_transfers,
    "paper.eight": paper_eight,
    "paper.table3": paper_table3,
    "task_free": included("task_free", "Answers without a task"),
    "drift.false_alarms": included("drift", "efficientnet: task", "minilm: task"),
    "drift.flips": included("drift", "Negative flips"),
    "speed.importance": included("speed", "Importance Ω throughput"),
    "speed.training": included("speed", "Training step"),
    "speed.http": included("speed", "Predictions over HTTP"),
    "speed.jobs": included("speed", "Jobs and storage"),
    "speed.targets": included("speed", "Against the targets"),
    "real_models.importance": included("real_models", "Importance Ω throughput"),
    "real_models.training": included("real_models", "Training step"),
    "real_models.targets": included("real_models", "Against the targets"),
    "service_real.targets": included("service_real", "Against the targets"),
    "shadow_latency": included("shadow_latency", "Production latency"),
    "scaling": partial(_sourced_first_table, "scaling"),
}


def regenerate(text: str, results: Path = RESULTS, skip: frozenset[str] = frozenset()) -> str:
    """`text` with every generated region rewritten (an unknown NAME is an error)."""
    def replace(match: re.Match) -> str:
        name = match["name"]
        if name not in GENERATORS:
            raise KeyError(f"no generator for the region {name!r}; known: {', '.join(GENERATORS)}")
        if name in skip:
            return match[0]
        return f"{match[1]}{GENERATORS[name](results)}\n{match[4]}"
    return REGION.sub(replace, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=Path, nargs="+", default=list(PAGES))
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if a region (the status table aside: it follows HEAD) differs from the results")
    args = parser.parse_args()
    stale = []
    for page in args.docs:
        text = page.read_text()
        if args.check:
            if regenerate(text, args.results, skip=frozenset({"status"})) != text:
                stale.append(page)
            continue
        page.write_text(regenerate(text, args.results))
        print(f"rewrote {len(REGION.findall(text))} generated regions of {page}")
    if stale:
        print(f"{', '.join(map(str, stale))}: generated tables differ from the results; "
              "run python -m benchmarks.tables", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
