"""The new head's warm-up judged on fresh sequences nobody tuned on: runs of benchmarks.fresh_sequences with
and without it, on the same seeds, side by side.

The runs themselves are benchmarks.fresh_sequences with `--head-warmup` (docs/benchmarks.md, Head warm-up,
gives the commands); this module reads their fresh_sequences.json files and writes the comparison:

    python -m benchmarks.head_warmup benchmarks/results/head_warmup    # writes comparison.md there
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

# (network, its runs: the one without warm-up first): files of the results folder, without ".json"
RUNS = (("minilm", ("minilm_w0", "minilm_wauto")),
        ("efficientnet", ("efficientnet_w0", "efficientnet_wauto_running_statistics", "efficientnet_wauto")),
        ("cnn", ("cnn_w0", "cnn_w200")),
        ("mlp", ("mlp_cnn_w0", "mlp_cnn_w10", "mlp_cnn_w50")),  # short warm-ups on networks from scratch,
        ("cnn", ("mlp_cnn_w0", "mlp_cnn_w10", "mlp_cnn_w50")))  # on seeds kept for exploring (100–109)
# What sets a run apart where its setting alone does not: the code it ran on.
NOTES = {"efficientnet_wauto_running_statistics": "before 41ab060: batch norms on their running statistics"}


def _run(folder: Path, name: str, network: str) -> tuple[str, dict[int, dict]]:
    """The run's head_warmup setting, and its sequences by seed."""
    results = json.loads((folder / f"{name}.json").read_text())
    return (str(results["settings"]["head_warmup"]),
            {s["seed"]: s for s in results["by_network"][network]["sequences"]})


def _row(network: str, warmup: str, sequences: list[dict]) -> str:
    judged = [s["judged"]["constrained"] for s in sequences]
    runs = [(s["runs"]["finetune"], s["runs"]["constrained"]) for s in sequences]
    return (f"| {network} | {warmup} | {len(sequences)} | "
            f"{sum(j['both_hold'] for j in judged)} | {sum(j['forgetting_holds'] for j in judged)} | "
            f"{sum(j['new_task_holds'] for j in judged)} | "
            f"{statistics.mean(ft['forgetting'] for ft, _ in runs):.3f} | "
            f"{statistics.mean(mas['forgetting'] for _, mas in runs):.3f} | "
            f"{statistics.mean(ft['new_task_accuracy'] for ft, _ in runs):.3f} | "
            f"{statistics.mean(mas['new_task_accuracy'] for _, mas in runs):.3f} |")


def comparison(folder: Path) -> str:
    """One row per run, over the seeds every run of a network finished."""
    lines = ["# Head warm-up on fresh sequences: with and without, on the same seeds", "",
             "MAS with the service's defaults (λ 'auto', constrained rule) and fine-tune (FT), per network on the "
             "seeds all its runs finished; warm-up 'auto' is 200 passes on the pretrained networks. Targets as in "
             "fresh_sequences.md. Accuracy is on each new task just after learning it, mean over the tasks from "
             "the second; forgetting is the mean over the earlier tasks at the end.", "",
             "| network | warm-up | sequences | both targets | forgetting target | new-task target | FT forgetting "
             "| MAS forgetting | FT new-task accuracy | MAS new-task accuracy |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for network, names in RUNS:
        runs = [_run(folder, name, network) for name in names]
        seeds = sorted(set.intersection(*(set(sequences) for _, sequences in runs)))
        label = f"{network}, seeds {seeds[0]}–{seeds[-1]}"
        for name, (warmup, sequences) in zip(names, runs, strict=True):
            setting = f"{warmup} ({NOTES[name]})" if name in NOTES else warmup
            lines.append(_row(label, setting, [sequences[seed] for seed in seeds]))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="holds the runs' json files named as in RUNS")
    folder = parser.parse_args(argv).folder
    (folder / "comparison.md").write_text(comparison(folder))
    print(f"wrote {folder / 'comparison.md'}")


if __name__ == "__main__":
    main()
