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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from torch import Tensor

from app.mas.accumulation import TaskImportance
from app.mas.evaluation import accuracy
from app.mas.importance import ImportanceSum
from app.mas.methods import Method, make_method
from app.mas.networks import MultiHeadNet
from app.mas.samples import LazySamples
from app.mas.training import TrainConfig, TrainingCancelled, TrainResult, train_task
from app.mas.validation import Trial, ValidationSet, best_trial

Inputs = Tensor | LazySamples
# What each method's estimate measures (MAS.md §4: measures of different units are labelled, not mixed
# silently); a method not named here measures with MAS's.
IMPORTANCE_MEASURES = {"ewc": "fisher", "si": "path-integral", "l2": "uniform"}


def importance_measure(method: str) -> str:
    return IMPORTANCE_MEASURES.get(method, "mas")


@dataclass(frozen=True)
class MethodChoice:
    """Which method, how strongly, and how its penalty is applied (the request's method fields)."""

    name: str = "mas"
    lam: float = 1.0
    penalty: str = "proximal"


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
    progress: Callable[[int, int, float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> LearnedTask:
    """Train `task` on (inputs, labels), anchored at θ* with Ω, then measure its estimate.

    With `lambda_grid`, each λ is trained from the same start on a copy of `net` and the best mean
    validation accuracy over `validation` wins (`LearnedTask.net` is then that copy); a grid is only
    searched when λ can change anything (an anchored method with Ω, or LwF with earlier heads) and an
    earlier task has validation data to say what it forgets; otherwise `method.lam` is used.
    `importance=None` measures nothing (the request's `importance.on = "none"`); `importance_data`
    measures on other inputs than the training ones (the benchmarks' Ω from held-out data)."""
    searchable = _lambda_matters(method.name, omega, net, task) and any(v.task != task for v in validation)
    grid = list(lambda_grid) if lambda_grid and searchable else [method.lam]
    if task not in net.heads:  # every trial starts from the same new head
        net.add_head(task, num_classes, seed=config.seed)
    trials: list[tuple[Trial, MultiHeadNet, Method, TrainResult]] = []
    for index, lam in enumerate(grid):
        candidate = copy.deepcopy(net) if len(grid) > 1 else net
        learner = make_method(method.name, lam=lam, theta_star=theta_star, omega=omega, form=method.penalty)
        training = train_task(candidate, task, num_classes, inputs, labels, learner, config,
                              progress=_offset(progress, index, len(grid)), should_stop=should_stop)
        scores = {v.task: accuracy(candidate, v.task, v.inputs, v.labels) for v in validation if len(v.labels)}
        trials.append((Trial(lam, scores), candidate, learner, training))
    chosen = best_trial([trial for trial, *_ in trials]) if len(trials) > 1 else trials[0][0]
    _, net, learner, training = next(entry for entry in trials if entry[0] is chosen)
    searched = [trial for trial, *_ in trials] if len(trials) > 1 else []
    learned = LearnedTask(net, training, learner, chosen.lam, None, trials=searched)
    if importance is None:
        return learned
    if should_stop is not None and should_stop():
        raise TrainingCancelled("stopped before measuring importance")
    estimate, fallback = TaskImportance(), ()
    for data, data_labels in importance_data if importance_data is not None else [(inputs, labels)]:
        measured: ImportanceSum = learner.task_importance(net, task, data, data_labels, importance.as_options())
        estimate, fallback = estimate.accumulate(measured), (*fallback, *measured.fallback)
    learned.estimate, learned.fallback = estimate, tuple(dict.fromkeys(fallback))
    return learned


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
