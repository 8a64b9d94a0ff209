"""Learning one task as the service does it, in one place: train with the method, then measure Ω.

The train job, the in-memory sequence runner (demo, tests, benchmarks) and the GPU checks all call
`learn_task`, so that what a benchmark measures is what a user's job does (MAS.md §3–4): the method
anchors θ* with the total Ω of the earlier tasks, the task is trained, and then this task's own
estimate (S_t, n_t) is measured at the new θ, by the method's own measure where it has one (EWC's
Fisher, SI's path) and by MAS's otherwise, so that a later task trained with MAS has an Ω to protect
this one. The caller decides where the estimate goes; the other tasks' estimates are not touched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from torch import Tensor

from app.mas.accumulation import TaskImportance
from app.mas.importance import ImportanceSum
from app.mas.methods import Method, make_method
from app.mas.networks import MultiHeadNet
from app.mas.samples import LazySamples
from app.mas.training import TrainConfig, TrainingCancelled, TrainResult, train_task

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
    training: TrainResult
    method: Method
    estimate: TaskImportance | None  # this task's (S_t, n_t); None when not measured
    fallback: tuple[str, ...] = field(default=())  # parameters whose Ω went through vmap


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
    progress: Callable[[int, int, float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> LearnedTask:
    """Train `task` on (inputs, labels), anchored at θ* with Ω, then measure its estimate.

    `importance=None` measures nothing (the request's `importance.on = "none"`); `importance_data`
    measures on other inputs than the training ones (the benchmarks' Ω from held-out data)."""
    learner = make_method(method.name, lam=method.lam, theta_star=theta_star, omega=omega, form=method.penalty)
    training = train_task(net, task, num_classes, inputs, labels, learner, config,
                          progress=progress, should_stop=should_stop)
    if importance is None:
        return LearnedTask(training, learner, None)
    if should_stop is not None and should_stop():
        raise TrainingCancelled("stopped before measuring importance")
    estimate, fallback = TaskImportance(), ()
    for data, data_labels in importance_data if importance_data is not None else [(inputs, labels)]:
        measured: ImportanceSum = learner.task_importance(net, task, data, data_labels, importance.as_options())
        estimate, fallback = estimate.accumulate(measured), (*fallback, *measured.fallback)
    return LearnedTask(training, learner, estimate, tuple(dict.fromkeys(fallback)))
