"""Every benchmark module is run by a test, so that none stops running unnoticed (issue 29: real_models' EfficientNet
cases failed for a week while its smoke test ran a BERT only)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOOLS = {"provenance", "status", "tables"}  # record and show results; tested on their own


def benchmark_modules() -> list[str]:
    """benchmarks/<name>.py with a command line that writes results (`RESULTS`, benchmarks/results), and the
    packages with a __main__.py."""
    names = [path.stem for path in (REPO / "benchmarks").glob("*.py")
             if 'if __name__ == "__main__"' in (text := path.read_text()) and "\nRESULTS = " in text
             and path.stem not in TOOLS]
    names += [path.parent.name for path in (REPO / "benchmarks").glob("*/__main__.py")]
    return sorted(names)


def test_every_benchmark_module_is_run_by_a_test() -> None:
    tests = "\n".join(path.read_text() for path in (REPO / "tests").rglob("*.py"))
    modules = benchmark_modules()
    assert {"real_models", "paper", "service_real", "scaling"} <= set(modules)
    untested = [m for m in modules if f"benchmarks.{m}" not in tests and f"benchmarks import {m}" not in tests]
    assert untested == [], f"no test runs these benchmarks: {untested}"
