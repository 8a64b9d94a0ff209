"""python -m benchmarks.paper: run the paper's experiments and write benchmarks/results/paper.{json,md} and plots."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from benchmarks.paper import report
from benchmarks.paper.backbones import MODALITY, Prepared, check_data, load_rows, prepare
from benchmarks.paper.data import FASHION_ENV, WORDNET_ENV, MissingData
from benchmarks.paper.experiments import PROFILES, Outcome, run_all
from benchmarks.paper.service import compare, learn_through_service
from benchmarks.paper.summary import claims, collect
from benchmarks.provenance import cpu_model, provenance, write_markdown, write_results

RESULTS = Path(__file__).resolve().parents[1] / "results"
BACKBONES = ["minilm", "efficientnet", "cnn"]


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.paper", description=__doc__)
    parser.add_argument("--profile", choices=list(PROFILES), default="default")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--backbones", default=",".join(BACKBONES),
                        help="comma-separated subset of " + ", ".join(BACKBONES))
    parser.add_argument("--workers", type=int, default=None, help="processes (1 torch thread each; 1 on cuda)")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (one process; bf16 autocast as a GPU worker)")
    parser.add_argument("--no-service", action="store_true", help="skip the runs through a real service")
    parser.add_argument("--sequences", type=int, default=None,
                        help="only the first N sequences of each backbone (the first is mixed_8, which the service"
                             " runs repeat)")
    parser.add_argument("--add", action="store_true",
                        help="keep the other backbones' results already in --out/paper.json (run in parts)")
    parser.add_argument("--replot", action="store_true", help="redraw paper.md and the plots from --out/paper.json")
    parser.add_argument("--fashion-mnist-dir", help=f"where the idx files are (default ${FASHION_ENV} or Debian's)")
    parser.add_argument("--wordnet-dir", help=f"where data.noun is (default ${WORDNET_ENV} or Debian's)")
    return parser.parse_args()


def _environment() -> str:
    return (f"{cpu_model()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start, torch "
            f"{torch.__version__}, {datetime.datetime.now(datetime.UTC).date()}")


def _progress(started: float) -> Callable[[Outcome], None]:
    def report_outcome(o: Outcome) -> None:
        j = o.job
        kind = f"search v{j.validation_seed}" if j.validation_seed is not None else f"seed {j.seed}"
        avg = o.run["summary"]["average_accuracy"]
        print(f"[{time.perf_counter() - started:7.0f} s] {j.backbone:12s} {j.sequence[:40]:40s} {j.variant:15s} "
              f"λ={j.lam!s:8s} {kind:9s} avg acc {avg:.3f} ({o.wall:.0f} s, {o.cpu:.0f} s CPU)", flush=True)
    return report_outcome


def _service_runs(prepared: dict[str, Prepared], backbones: dict, profile: dict) -> dict:
    """Each modality's sequence through a real service, against the in-process `mas` run of seed 0."""
    out = {}
    for name in [b for b in profile["service_backbones"] if b in prepared]:
        mixed = backbones[name]["sequences"]["mixed_8"]["variants"]["mas"]
        reference = mixed["runs"][0]
        tasks = reference["tasks"][: profile["service_tasks"]]
        with tempfile.TemporaryDirectory(prefix="paper-service-") as root:
            served = learn_through_service(prepared[name], tasks, lam=mixed["lambda"], seed=reference["seed"],
                                           train=profile["train"][name], root=Path(root))
        sizes = {t: len(prepared[name].rows[t].y_eval) for t in tasks}
        comparison = compare(served, reference, sizes)
        print(f"service {name}: max |Δ accuracy| {comparison['max_abs_difference']:.4f} "
              f"({comparison['max_difference_in_samples']} eval samples) over {comparison['entries']} entries, "
              f"{served['wall']:.0f} s", flush=True)
        out[name] = {**served, "lambda": mixed["lambda"], "seed": reference["seed"], "comparison": comparison,
                     "in_process_seconds": sum(reference["seconds"][: len(tasks)])}
    return out


def _write(results: dict, out: Path, *, started: dict | None = None, earlier: dict | None = None) -> None:
    """Results and markdown of a run begun with `started`; without it, paper.md again (--replot) under the
    provenance the results have."""
    if started is None:
        (out / "paper.json").write_text(json.dumps(results, indent=1))
        write_markdown(out, "paper", results, report.markdown(results))
    else:
        write_results(out, "paper", results, report.markdown(results), started=started, earlier=earlier)
    print(f"wrote {out / 'paper.json'}, paper.md and {', '.join(report.plot(results, out))}", flush=True)


def run(args: argparse.Namespace) -> dict:
    profile = PROFILES[args.profile] | {"device": args.device}
    if args.sequences is not None:
        profile["sequences"] = args.sequences
    names = [b.strip() for b in args.backbones.split(",") if b.strip()]
    unknown = set(names) - set(BACKBONES)
    if unknown:
        raise SystemExit(f"unknown backbones: {sorted(unknown)}; choose from {BACKBONES}")
    check_data(names)
    torch.set_num_threads(1)
    started, machine = time.perf_counter(), _environment()
    rows = {m: load_rows(m, profile[m]) for m in sorted({MODALITY[n] for n in names})}
    prepared = {}
    for name in names:
        prepared[name] = prepare(name, rows[MODALITY[name]], profile)
        ready = prepared[name]
        print(f"{name}: {len(ready.tasks)} tasks ready, frozen features {ready.feature_seconds:.0f} s", flush=True)
    workers = 1 if args.device != "cpu" else args.workers or profile["workers"]  # no fork after CUDA starts
    schedule, outcomes = run_all(profile, prepared, workers, _progress(started))
    backbones = collect(outcomes, schedule.chosen, schedule.scores, prepared)
    service_started = time.perf_counter()
    service = {} if args.no_service else _service_runs(prepared, backbones, profile)
    return {"profile": args.profile, "settings": {k: v for k, v in profile.items()} | {"workers": workers},
            "machine": machine, "backbones": backbones, "service": service,
            "load_average_at_end": os.getloadavg()[0],
            "wall_seconds": {"total": time.perf_counter() - started,
                             "service": time.perf_counter() - service_started}}


def _merged(results: dict, out: Path) -> dict:
    """With --add: the other backbones' results (and service runs) already in paper.json are kept."""
    path = out / "paper.json"
    if not path.exists():
        return results
    old = json.loads(path.read_text())
    if old.get("profile") != results["profile"]:
        return results
    results["earlier_provenance"] = {"provenance": old.get("provenance")}
    for name, entry in old["backbones"].items():
        results["backbones"].setdefault(name, entry)
    for name, entry in old.get("service", {}).items():
        results["service"].setdefault(name, entry)
    results["wall_seconds"]["parts"] = [*old["wall_seconds"].get("parts", [old["wall_seconds"]["total"]]),
                                        results["wall_seconds"]["total"]]
    results["wall_seconds"]["total"] = sum(results["wall_seconds"]["parts"])
    return results


def main() -> None:
    args = _arguments()
    if args.fashion_mnist_dir:
        os.environ[FASHION_ENV] = args.fashion_mnist_dir
    if args.wordnet_dir:
        os.environ[WORDNET_ENV] = args.wordnet_dir
    if args.replot:
        results = json.loads((args.out / "paper.json").read_text())
        results["claims"] = claims(results["backbones"])
        _write(results, args.out)
        return
    began = provenance()
    try:
        results = run(args)
    except MissingData as error:
        print(f"benchmarks.paper: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    if args.add:
        results = _merged(results, args.out)
    results["claims"] = claims(results["backbones"])
    _write(results, args.out, started=began, earlier=results.pop("earlier_provenance", None))


if __name__ == "__main__":
    main()
