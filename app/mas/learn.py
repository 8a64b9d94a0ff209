"""Learning one task as the service does it, in one place: train with the method, then measure Ω.

The train job, the in-memory sequence runner (demo, tests, benchmarks) and the GPU checks all call
`learn_task`, so that what a benchmark measures is what a user's job does (MAS.md §3–4): the method
anchors θ* with the total Ω of the earlier tasks, the task is trained, and then this task's own
estimate (S_t, n_t) is measured at the new θ, by the method's own measure where it has one (EWC's
Fisher, SI's path) and by MAS's otherwise, so that a later task trained with MAS has an Ω to protect
this one. The caller decides where the estimate goes; the other tasks' estimates are not touched.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, TypedDict

from torch import Tensor

from app.mas.accumulation import TaskImportance
from app.mas.evaluation import accuracy_and_loss
from app.mas.frozen_prefix import CachedPrefix, TrunkSplit, cache_prefix
from app.mas.head_warmup import warm_up_head
from app.mas.importance import ImportanceSum
from app.mas.methods import Method, make_method
from app.mas.networks import MultiHeadNet
from app.mas.samples import LazySamples
from app.mas.training import (
    RunSnapshot,
    TrainConfig,
    TrainingCancelled,
    TrainResult,
    begin_training,
    network_snapshot,
    restore_network,
    train_task,
)
from app.mas.validation import Choice, Selection, Trial, ValidationSet, choose_trial, contenders, selection_basis

Inputs = Tensor | LazySamples
# What each method's estimate measures (MAS.md §4: measures of different units are labelled, not mixed
# silently); a method not named here measures with MAS's.
IMPORTANCE_MEASURES = {"ewc": "fisher", "si": "path-integral", "l2": "uniform"}


# Sees each λ trial of a search once it is measured: (task, trial, the network it trained).
TrialObserver = Callable[[str, Trial, MultiHeadNet], None]


def importance_measure(method: str) -> str:
    return IMPORTANCE_MEASURES.get(method, "mas")


# A finished trial that could still be chosen, as a checkpoint keeps it ("lambda" is no identifier, so
# the functional form). Checkpoints are plain dicts (torch.save, read back with weights_only=True).
KeptTrial = TypedDict("KeptTrial", {
    "index": int,  # its place in the grid (a snapshot from before the constrained rule has none)
    "lambda": float,
    "network": dict[str, Tensor],  # `network_snapshot` of the trained network
    "method": dict[str, Any],  # the method's `state()`
    "training": dict[str, Any],  # its TrainResult, as asdict
}, total=False)


class SearchSnapshot(TypedDict, total=False):
    """Where a task's learning stands: the λ search's trials done and kept, and the run in progress (what a
    train job's checkpoint holds, app/jobs/checkpoints.py)."""

    trial: int  # the index in the grid of the run in progress
    done: list[dict[str, Any]]  # every finished trial, `Trial.as_dict`
    kept: list[KeptTrial]
    run: RunSnapshot | None
    best: KeptTrial  # a snapshot from before the constrained rule kept only its best trial, here


@dataclass(frozen=True)
class MethodChoice:
    """Which method, how strongly, and how its penalty is applied (the request's method fields)."""

    name: str = "mas"
    lam: float = 1.0
    penalty: str = "proximal"
    options: Mapping[str, float] | None = None  # the method's own (SI's damping, LwF's temperature)


@dataclass(frozen=True)
class ImportanceChoice:
    """How this task's Ω is measured after training (the request's `importance` options)."""

    variant: str = "global"
    output: str = "l2"
    reduction: str = "per_sample"

    def as_options(self) -> dict[str, str]:
        return {"variant": self.variant, "output": self.output, "reduction": self.reduction}


@dataclass
class LearnedTask:
    net: MultiHeadNet  # the network that learned the task: the caller's, or the copy trained with the chosen λ
    training: TrainResult
    method: Method
    lam: float  # the λ trained with: the request's, or the one chosen on validation data
    estimate: TaskImportance | None  # this task's (S_t, n_t); None when not measured
    fallback: tuple[str, ...] = field(default=())  # parameters whose Ω went through vmap
    trials: list[Trial] = field(default_factory=list)  # every λ tried, with its validation scores
    choice: Choice | None = None  # how the search chose among them (rule, basis, admissible λ); None: no search
    head_warmup: int = 0  # passes the new head trained alone before the task (app/mas/head_warmup.py)


def learn_task(
    net: MultiHeadNet,
    task: str,
    num_classes: int,
    inputs: Inputs,
    labels: Tensor,
    *,
    method: MethodChoice,
    theta_star: dict[str, Tensor],
    omega: dict[str, Tensor],
    config: TrainConfig,
    importance: ImportanceChoice | None = ImportanceChoice(),
    importance_data: Sequence[tuple[Inputs, Tensor]] | None = None,
    lambda_grid: Sequence[float] | None = None,
    validation: Sequence[ValidationSet] = (),
    selection: Selection = Selection(),
    progress: Callable[[int, int, float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: SearchSnapshot | None = None,
    checkpoint: Callable[[Callable[[], SearchSnapshot]], None] | None = None,
    prefix: TrunkSplit | None = None,
    prefix_budget: int = 0,
    on_trial: TrialObserver | None = None,
) -> LearnedTask:
    """Train `task` on (inputs, labels), anchored at θ* with Ω, then measure its estimate.

    With `lambda_grid`, each λ is trained from the same start on a copy of `net` and `selection` chooses
    on `validation` (app/mas/validation.py: by default the least forgetting among the trials within a
    tolerance of the best new-task accuracy; `LearnedTask.net` is then that copy, `LearnedTask.choice`
    says how it was chosen). Every trial that could still be chosen keeps its copy until the search
    ends (under the constrained rule all admissible ones: up to one network per λ). A grid is only
    searched when λ can change anything (an anchored method with Ω, or LwF with earlier heads) and an
    earlier task has validation data to say what it forgets; otherwise `method.lam` is used.
    `importance=None` measures nothing (the request's `importance.on = "none"`); `importance_data`
    measures on other inputs than the training ones (the benchmarks' Ω from held-out data).

    `checkpoint` and `resume` work as `train_task`'s, for the whole search: a snapshot also holds the
    trials already done and the network and method state of each that could still be chosen; resumed on
    the network as it began, the result is the uninterrupted one, bit for bit on the CPU.

    A new head first trains alone on the trunk's features for `config.head_warmup` passes (every trial
    then starts from that head; app/mas/head_warmup.py).

    `prefix` (the trunk's split at its first trainable block) computes the frozen prefix once for the
    training, validation and importance rows, within `prefix_budget` bytes, and every trial trains the
    suffix on those features (app/mas/frozen_prefix.py): the same run up to rounding, names unchanged.

    `on_trial(task, trial, network)` sees each trial as soon as it is measured, with the network it trained
    (what benchmarks/lambda_rules.py evaluates every trial on, to score selection rules offline); it must
    leave the network as it found it."""
    searchable = _lambda_matters(method.name, omega, net, task) and any(v.task != task for v in validation)
    grid = list(lambda_grid) if lambda_grid and searchable else [method.lam]
    new_head = task not in net.heads
    if new_head:  # every trial starts from the same new head
        net.add_head(task, num_classes, seed=config.seed)
        net.heads[task].to(inputs.device)
    row_sets = [inputs, *(v.inputs for v in validation), *(data for data, _ in importance_data or ())]
    cache = cache_prefix(net, prefix, row_sets, prefix_budget)
    if cache is not None:
        inputs, validation, importance_data = _cached_rows(cache, net, inputs, validation, importance_data)
    warmup = warm_up_head(net if cache is None else cache.view(net), task, inputs, labels, config,
                          config.head_warmup) if new_head else []  # a head trained before is not warmed up again
    search = _Search(net, task, num_classes, inputs, labels, method, theta_star, omega, config, validation, selection,
                     cache, on_trial)
    done, kept = search.run(grid, resume or {"trial": 0, "done": [], "kept": [], "run": None}, progress, should_stop,
                            checkpoint)
    choice = choose_trial(done, task, selection, search.basis, search.why)
    best = next(best for best in kept if best.trial is choice.trial)
    learned = LearnedTask(best.net, best.training, best.learner, best.trial.lam, None,
                          trials=done if len(grid) > 1 else [], choice=choice if len(grid) > 1 else None,
                          head_warmup=len(warmup))
    if importance is None:
        return learned
    if should_stop is not None and should_stop():
        raise TrainingCancelled("stopped before measuring importance")
    rows = importance_data if importance_data is not None else [(inputs, labels)]
    learned.estimate, learned.fallback = _measure_importance(best, task, rows, importance)
    return learned


def _measure_importance(best: _Best, task: str, rows: Sequence[tuple[Inputs, Tensor]],
                        importance: ImportanceChoice) -> tuple[TaskImportance, tuple[str, ...]]:
    """The chosen trial's importance for `task`, summed over every batch of rows, and the layers
    that fell back to a slower path (each named once)."""
    estimate, fallback = TaskImportance(), ()
    for data, data_labels in rows:
        measured: ImportanceSum = best.learner.task_importance(best.trained, task, data, data_labels,
                                                               importance.as_options())
        estimate, fallback = estimate.accumulate(measured), (*fallback, *measured.fallback)
    return estimate, tuple(dict.fromkeys(fallback))


@dataclass
class _Search:
    """The λ search of one task (a grid of one λ when nothing is searched): each trial trains from the
    same start, is measured on the validation sets, and is kept while it could still be chosen."""

    net: MultiHeadNet
    task: str
    num_classes: int
    inputs: Inputs
    labels: Tensor
    method: MethodChoice
    theta_star: dict[str, Tensor]
    omega: dict[str, Tensor]
    config: TrainConfig
    validation: Sequence[ValidationSet]
    selection: Selection
    cache: CachedPrefix | None
    on_trial: TrialObserver | None = None

    def __post_init__(self) -> None:
        self.basis, self.why = selection_basis({v.task: len(v.labels) for v in self.validation}, self.selection)

    def run(self, grid: list[float], resume: SearchSnapshot, progress: Callable[[int, int, float], None] | None,
            should_stop: Callable[[], bool] | None,
            checkpoint: Callable[[Callable[[], SearchSnapshot]], None] | None) -> tuple[list[Trial], list[_Best]]:
        """Every trial of `grid` from `resume`'s on; returns them all, and those still kept."""
        done = [Trial.from_dict(t) for t in resume["done"]]
        kept = _restored_kept(self.net, self.task, self.num_classes, self.inputs, self.method, self.theta_star,
                              self.omega, self.config,
                              resume.get("kept", [resume["best"]] if resume.get("best") else []), done, self.cache)
        for index in range(resume["trial"], len(grid)):
            candidate = copy.deepcopy(self.net) if len(grid) > 1 else self.net
            trained = candidate if self.cache is None else self.cache.view(candidate)
            learner = make_method(self.method.name, lam=grid[index], theta_star=self.theta_star, omega=self.omega,
                                  form=self.method.penalty, options=self.method.options)
            keep = None if checkpoint is None else partial(_search_snapshot, checkpoint, index, list(done),
                                                           list(kept), self.task)
            training = train_task(trained, self.task, self.num_classes, self.inputs, self.labels, learner,
                                  self.config, progress=_offset(progress, index, len(grid)), should_stop=should_stop,
                                  resume=resume["run"] if index == resume["trial"] else None, checkpoint=keep)
            measured = {v.task: accuracy_and_loss(trained, v.task, v.inputs, v.labels) for v in self.validation
                        if len(v.labels)}
            done.append(Trial(grid[index], {t: m[0] for t, m in measured.items()},
                              {t: m[1] for t, m in measured.items()}))
            if self.on_trial is not None:
                self.on_trial(self.task, done[-1], trained)
            kept.append(_Best(done[-1], candidate, learner, training, trained, index))
            still = contenders(done, self.task, self.selection, self.basis)
            kept = [best for best in kept if any(best.trial is trial for trial in still)]
        return done, kept


@dataclass
class _Best:
    trial: Trial
    net: MultiHeadNet
    learner: Method
    training: TrainResult
    trained: MultiHeadNet  # `net` as training ran it: itself, or its view over cached prefix features
    index: int  # its place in the grid (a grid may name a λ twice)


def _cached_rows(cache: CachedPrefix, net: MultiHeadNet, inputs: Inputs, validation: Sequence[ValidationSet],
                 importance_data: Sequence[tuple[Inputs, Tensor]] | None
                 ) -> tuple[Tensor, list[ValidationSet], list[tuple[Inputs, Tensor]] | None]:
    """Every row set of the job as the prefix's features, each distinct set computed once."""
    computed: dict[int, Tensor] = {}

    def features(rows: Inputs) -> Tensor:
        if id(rows) not in computed:
            computed[id(rows)] = cache.features(net, rows)
        return computed[id(rows)]

    return (features(inputs), [ValidationSet(v.task, features(v.inputs), v.labels) for v in validation],
            None if importance_data is None else [(features(data), labels) for data, labels in importance_data])


def _search_snapshot(checkpoint: Callable[[Callable[[], SearchSnapshot]], None], index: int, done: list[Trial],
                     kept: list[_Best], task: str, run: Callable[[], RunSnapshot]) -> None:
    """Hand `checkpoint` a snapshot of the whole search: the run in progress is one trial of it."""
    def snapshot() -> SearchSnapshot:
        stored = [{"index": best.index, "lambda": best.trial.lam,
                   "network": network_snapshot(best.trained, best.trained.task_parameters(task)),
                   "method": best.learner.state(), "training": asdict(best.training)} for best in kept]
        return {"trial": index, "done": [t.as_dict() for t in done], "kept": stored, "run": run()}
    checkpoint(snapshot)


def _restored_kept(net: MultiHeadNet, task: str, num_classes: int, inputs: Inputs, method: MethodChoice,
                   theta_star: dict[str, Tensor], omega: dict[str, Tensor], config: TrainConfig,
                   stored: list[KeptTrial], done: list[Trial], cache: CachedPrefix | None) -> list[_Best]:
    """The finished trials an interrupted search still held, each rebuilt from its snapshot on a copy of the
    start (a snapshot from before the constrained rule holds one, as "best", without its index)."""
    kept = []
    for entry in stored:
        candidate = copy.deepcopy(net)
        learner = make_method(method.name, lam=entry["lambda"], theta_star=theta_star, omega=omega,
                              form=method.penalty, options=method.options)
        trained = candidate if cache is None else cache.view(candidate)
        begin_training(trained, task, num_classes, inputs, learner, config)
        names = trained.state_dict().keys()  # a snapshot of the whole network also holds the prefix's buffers
        restore_network(trained, {name: value for name, value in entry["network"].items() if name in names})
        learner.load_state(entry["method"])
        candidate.eval()
        index = entry.get("index", next(i for i, t in enumerate(done) if t.lam == entry["lambda"]))
        kept.append(_Best(done[index], candidate, learner, TrainResult(**entry["training"]), trained, index))
    return kept


def _lambda_matters(method: str, omega: dict[str, Tensor], net: MultiHeadNet, task: str) -> bool:
    """Whether trials with different λ could differ: an anchored method needs some Ω > 0, LwF an
    earlier head to distil; fine-tune has no λ at all."""
    if method == "finetune":
        return False
    if method == "lwf":
        return any(name != task for name in net.heads)
    return any(bool((value > 0).any()) for value in omega.values())


def _offset(progress: Callable[[int, int, float], None] | None, index: int,
            trials: int) -> Callable[[int, int, float], None] | None:
    """Progress of one trial as part of the whole search: trial i's step s of T is i·T + s of trials·T."""
    if progress is None:
        return None
    return lambda done, total, loss: progress(index * total + done, trials * total, loss)
