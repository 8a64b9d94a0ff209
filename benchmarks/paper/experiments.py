"""Profiles, variants and the schedule of runs: λ searched on validation data, then the runs that report.

Per backbone, each fixed-λ variant's λ is chosen on the 5-task sequence (the first 5 tasks of mixed_8)
with a validation split carved from each task's training rows (benchmarks.sequences.with_validation,
30 %): the λ of its grid with the best mean final average accuracy over the validation seeds. That λ is
then used for every sequence of the backbone (mixed_8 and the transfer pairs); eval sets are never
looked at until the reporting runs. `mas_auto` chooses λ inside each run, task by task, as a train job
with `"lambda": "auto"` does. Table 3's variants run on the 5-task sequence: Ω from the task's eval
inputs without labels ("deployment"), train and eval together, and the vector output reuse MAS's λ, as
the paper compared them at one λ; local MAS measures each layer's own output and gets its own search.

Runs are independent jobs (backbone, sequence, variant, λ, seed), spread over `workers` processes of
one torch thread each (on a shared 2-core machine two single-threaded processes do far more than one
process with two threads, whose OpenMP threads spin-wait on each other); a variant's reporting runs
start as soon as its search is done.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field

import torch

from app.mas.data import TaskData
from app.mas.head_warmup import warmup_epochs
from app.mas.methods import METHODS
from app.mas.omega_shape import OmegaShape
from app.mas.training import TrainConfig, precision_for
from benchmarks.paper.backbones import Prepared
from benchmarks.paper.runner import run_tasks
from benchmarks.sequences import with_validation

# The anchored methods' λ 10^1.5 apart, over the decades where trial runs on validation splits of these data
# (all three backbones) found each method's best: Ω's scale differs by orders of magnitude between methods and
# between networks. LwF's λ weighs one loss against another: 10^0.5 apart.
GRIDS = {
    "mas": [0.1, 3.0, 100.0, 3000.0],
    "ewc": [100.0, 3e3, 1e5, 3e6],
    "si": [10.0, 300.0, 1e4, 3e5, 1e7],
    "l2": [1e-3, 0.03, 1.0, 30.0],
    "lwf": [0.1, 0.3, 1.0, 3.0, 10.0],
}
TRAIN = {  # per backbone: SGD with momentum 0.9, as the service's default optimizer
    "cnn": {"epochs": 5, "batch_size": 32, "lr": 0.05},
    "efficientnet": {"epochs": 3, "batch_size": 32, "lr": 0.05},
    "minilm": {"epochs": 4, "batch_size": 16, "lr": 0.05},
}
PROFILES: dict[str, dict] = {
    "default": {"seeds": 5, "validation_seeds": 1, "image": {"n_train": 80, "n_eval": 100},
                "text": {"n_train": 32, "n_eval": 30}, "image_size": 64, "max_length": 32, "grids": GRIDS,
                "auto_grid": [0.1, 10.0, 1000.0], "auto_validation_fraction": 0.1, "train": TRAIN,
                "max_tasks": None, "sequences": None, "service_tasks": 5,
                "service_backbones": ["efficientnet", "minilm"], "workers": 2},
    "full": {"seeds": 5, "validation_seeds": 2, "image": {"n_train": 1000, "n_eval": 400},
             "text": {"n_train": 240, "n_eval": 100}, "image_size": 96, "max_length": 64, "grids": GRIDS,
             "auto_grid": [0.1, 10.0, 1000.0, 1e5], "auto_validation_fraction": 0.1, "train": TRAIN,
             "max_tasks": None, "sequences": None, "service_tasks": 5,
             "service_backbones": ["efficientnet", "minilm"], "workers": 2},
    "smoke": {"seeds": 1, "validation_seeds": 1, "image": {"n_train": 8, "n_eval": 6},
              "text": {"n_train": 6, "n_eval": 4}, "image_size": 64, "max_length": 16,
              # one λ each (no search) but MAS's, whose search the smoke run keeps to exercise it
              "grids": {method: grid[1:3] if method == "mas" else grid[1:2] for method, grid in GRIDS.items()},
              "auto_grid": [1.0, 100.0], "auto_validation_fraction": 0.2,
              "train": {name: {**train, "epochs": 1} for name, train in TRAIN.items()},
              "max_tasks": 2, "sequences": None, "service_tasks": 2, "service_backbones": ["efficientnet", "minilm"],
              "workers": 2},
}
VALIDATION_FRACTION = 0.3
FIVE = "five"  # the 5-task sequence: mixed_8's first 5 tasks (its own runs only for Table 3's variants)


@dataclass(frozen=True)
class Variant:
    method: str
    lam: str | None = None  # "auto": chosen inside the run
    importance_on: str = "train"
    importance_options: dict | None = None
    lambda_of: str | None = None  # reuse this variant's chosen λ
    only: tuple[str, ...] | None = None  # the backbones it applies to
    omega_shape: OmegaShape = OmegaShape()  # how the earlier tasks' Ω is reshaped (app/mas/omega_shape.py)


MAIN = {
    "finetune": Variant("finetune"), "lwf": Variant("lwf"), "ewc": Variant("ewc"), "si": Variant("si"),
    "l2": Variant("l2"), "mas": Variant("mas"), "mas_auto": Variant("mas", lam="auto"),
    # issue 27, item 3: Ω scaled per block, and (MiniLM) the penalty on the attention layers alone; each
    # searches its own λ over MAS's grid
    "mas_block": Variant("mas", omega_shape=OmegaShape(scaling="per_block")),
    "mas_attention": Variant("mas", omega_shape=OmegaShape(penalize="attention"), only=("minilm",)),
    # the earlier tasks' Ω blended (each task halves the older ones' weight) instead of summed, for MAS and,
    # to tell the method from the accumulation, for EWC
    "mas_blend": Variant("mas", omega_shape=OmegaShape(accumulation="blend")),
    "ewc_blend": Variant("ewc", omega_shape=OmegaShape(accumulation="blend")),
}
TABLE3 = {
    "mas_omega_test": Variant("mas", importance_on="test", lambda_of="mas"),
    "mas_omega_both": Variant("mas", importance_on="both", lambda_of="mas"),
    # The local variant covers linear and convolution layers only (app.mas.importance): the tails hold
    # layer and batch norms, so it runs on the CNN alone.
    "mas_local": Variant("mas", importance_options={"variant": "local"}, only=("cnn",)),
    "mas_vector": Variant("mas", importance_options={"output": "vector"}, lambda_of="mas"),
}
VARIANTS = MAIN | TABLE3


def applies(variant: str, backbone: str) -> bool:
    only = VARIANTS[variant].only
    return only is None or backbone in only


def searched(variant: str) -> bool:
    v = VARIANTS[variant]
    return METHODS[v.method].uses_lambda and v.lam is None and v.lambda_of is None


@dataclass(frozen=True)
class Job:
    backbone: str
    sequence: str
    variant: str
    lam: float | str
    seed: int
    validation_seed: int | None = None  # a search run, on the validation split of that seed


@dataclass
class Outcome:
    job: Job
    run: dict
    wall: float
    cpu: float  # this process's CPU seconds: what the run costs, whatever else shares the machine


_PREPARED: dict[str, Prepared] = {}  # set before the workers fork; read by `execute`
_PROFILE: dict = {}


def tasks_of(prepared: Prepared, sequence: str) -> list[str]:
    return prepared.sequences["mixed_8"][:5] if sequence == FIVE else prepared.sequences[sequence]


def execute(job: Job) -> Outcome:
    prepared, profile = _PREPARED[job.backbone], _PROFILE
    data = [prepared.tasks[name] for name in tasks_of(prepared, job.sequence)]
    if job.validation_seed is not None:
        data = with_validation(data, VALIDATION_FRACTION, job.validation_seed)
    device = torch.device(profile.get("device", "cpu"))
    data = [TaskData(t.name, *(x.to(device) for x in (t.x_train, t.y_train, t.x_test, t.y_test))) for t in data]
    variant = VARIANTS[job.variant]
    config = TrainConfig(**profile["train"][job.backbone], momentum=0.9, seed=job.seed,
                         precision=precision_for(device),
                         head_warmup=warmup_epochs("auto", pretrained=job.backbone != "cnn"))  # as a train job
    started, cpu = time.perf_counter(), time.process_time()
    run = run_tasks(data, lambda: prepared.make_net(job.seed).to(device), method=variant.method, lam=job.lam,
                    config=config, importance_options=variant.importance_options, importance_on=variant.importance_on,
                    validation_fraction=profile["auto_validation_fraction"],
                    lambda_grid=tuple(profile["auto_grid"]), omega_shape=variant.omega_shape)
    return Outcome(job, run.as_dict(), time.perf_counter() - started, time.process_time() - cpu)


def _one_thread() -> None:
    torch.set_num_threads(1)


@dataclass
class Schedule:
    """Which runs to make, and λ as searches finish: `next_jobs` hands out what is ready."""

    profile: dict
    prepared: dict[str, Prepared]
    chosen: dict[tuple[str, str], float | str] = field(default_factory=dict)
    scores: dict[tuple[str, str], dict[float, list[float]]] = field(default_factory=dict)

    def first_jobs(self) -> list[Job]:
        jobs = []
        for backbone in self.prepared:
            for variant in VARIANTS:
                if not applies(variant, backbone):
                    continue
                grid = self.profile["grids"].get(VARIANTS[variant].method, [])
                if searched(variant) and len(grid) == 1:
                    self._choose(backbone, variant, grid[0])
                    jobs += self._unlocked(backbone, variant)
                elif searched(variant):
                    self.scores[backbone, variant] = {lam: [] for lam in grid}
                    jobs += [Job(backbone, FIVE, variant, lam, 0, validation_seed=v)
                             for lam in grid for v in range(self.profile["validation_seeds"])]
                elif VARIANTS[variant].lambda_of is None:
                    self.chosen[backbone, variant] = "auto" if VARIANTS[variant].lam == "auto" else 0.0
                    jobs += self.reporting_jobs(backbone, variant)
        return jobs

    def reporting_jobs(self, backbone: str, variant: str) -> list[Job]:
        lam = self.chosen[backbone, variant]
        sequences = [FIVE] if variant in TABLE3 else list(self.prepared[backbone].sequences)
        return [Job(backbone, sequence, variant, lam, seed)
                for seed in range(self.profile["seeds"]) for sequence in sequences]

    def record(self, outcome: Outcome) -> list[Job]:
        """A finished run; the jobs it unlocks (a variant's reporting runs, once its search is complete)."""
        job = outcome.job
        if job.validation_seed is None:
            return []
        scores = self.scores[job.backbone, job.variant]
        scores[job.lam].append(outcome.run["summary"]["average_accuracy"])
        if any(len(s) < self.profile["validation_seeds"] for s in scores.values()):
            return []
        self._choose(job.backbone, job.variant, max(scores, key=lambda lam: statistics.fmean(scores[lam])))
        return self._unlocked(job.backbone, job.variant)

    def _choose(self, backbone: str, variant: str, lam: float) -> None:
        """The variant's λ, and that of Table 3's variants that reuse it."""
        self.chosen[backbone, variant] = lam
        for other, spec in TABLE3.items():
            if spec.lambda_of == variant and applies(other, backbone):
                self.chosen[backbone, other] = lam

    def _unlocked(self, backbone: str, variant: str) -> list[Job]:
        jobs = self.reporting_jobs(backbone, variant)
        for other, spec in TABLE3.items():
            if spec.lambda_of == variant and applies(other, backbone):
                jobs += self.reporting_jobs(backbone, other)
        return jobs


def run_all(profile: dict, prepared: dict[str, Prepared], workers: int,
            report: Callable[[Outcome], None]) -> tuple[Schedule, list[Outcome]]:
    """Every run of every backbone, `workers` at a time (in this process when 1)."""
    _PREPARED.clear()
    _PREPARED.update(prepared)
    _PROFILE.clear()
    _PROFILE.update(profile)
    schedule = Schedule(profile, prepared)
    outcomes: list[Outcome] = []
    for outcome in _executed(schedule, workers):
        outcomes.append(outcome)
        report(outcome)
    return schedule, outcomes


def _executed(schedule: Schedule, workers: int) -> Iterator[Outcome]:
    if workers <= 1:
        queue = schedule.first_jobs()
        while queue:
            outcome = execute(queue.pop(0))
            queue += schedule.record(outcome)
            yield outcome
        return
    context = multiprocessing.get_context("fork")  # the workers inherit the prepared tensors
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_one_thread) as pool:
        pending: set[Future] = {pool.submit(execute, job) for job in _longest_first(schedule.first_jobs())}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                outcome = future.result()
                pending |= {pool.submit(execute, job) for job in _longest_first(schedule.record(outcome))}
                yield outcome


def _longest_first(jobs: list[Job]) -> list[Job]:
    """Text before images before the CNN, long sequences first: the queue ends with short runs."""
    order = {"minilm": 0, "efficientnet": 1, "cnn": 2}
    return sorted(jobs, key=lambda j: (order.get(j.backbone, 3), j.sequence != "mixed_8", j.sequence != FIVE))
