"""A task sequence run end to end in memory: what the service does across versions, in one loop.

Used by the demo, the learning tests and the benchmarks. Each task is learned by `learn_task`, as a
train job learns it (training, then the task's own Ω estimate, MAS.md §4); then every task learned
so far is evaluated, so the result is the accuracy matrix that the service reports. `learn_sequence`
is the one loop, step by step (the paper benchmark, benchmarks/paper/runner.py, records its own
figures from each step); `run_sequence` runs it on a network `build_network` makes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from torch import Tensor

from app.mas.accumulation import TaskImportance
from app.mas.data import TaskData
from app.mas.evaluation import accuracy, continual_metrics
from app.mas.learn import ImportanceChoice, LearnedTask, MethodChoice, TrialObserver, learn_task
from app.mas.networks import MultiHeadNet, build_network, network_state
from app.mas.omega_shape import OmegaShape
from app.mas.training import TrainConfig
from app.mas.validation import DEFAULT_GRID, Choice, Selection, ValidationSet, split_validation


def nbytes(tensors: dict[str, Tensor]) -> int:
    """Bytes held by a dict of tensors (the memory figures of Fig. 4)."""
    return sum(t.numel() * t.element_size() for t in tensors.values())


@dataclass
class SequenceResult:
    tasks: list[str]
    matrix: list[dict[str, float]] = field(default_factory=list)
    state_bytes: int = 0  # kept between tasks besides θ: every task's importance estimate
    training_state_bytes: int = 0  # the most a method held while training (θ*, Ω, SI's path, LwF's targets)
    seconds: float = 0.0
    lambdas: list[float] = field(default_factory=list)  # the λ each task trained with (chosen, for "auto")
    choices: list[Choice | None] = field(default_factory=list)  # how "auto" chose each task's λ; None: no search

    @property
    def summary(self) -> dict[str, float | None]:
        return continual_metrics(self.matrix, self.tasks)


def run_sequence(
    tasks: list[TaskData],
    *,
    method: str,
    lam: float | str = 1.0,
    architecture: dict | None = None,
    config: TrainConfig | None = None,
    seed: int = 0,
    importance_options: dict | None = None,
    importance_on: str = "train",
    validation_fraction: float = 0.1,
    lambda_grid: tuple[float, ...] = DEFAULT_GRID,
    selection: Selection = Selection(),
    net: MultiHeadNet | None = None,
) -> SequenceResult:
    """Train `tasks` in order with one method (`learn_sequence`) on `net`, or on a network `architecture`
    makes (default an MLP 128-128), and keep what the service reports: the accuracy matrix, the λ of each task
    and how it was chosen, the bytes kept between tasks and while training."""
    architecture = architecture or {"kind": "mlp", "input_shape": [tasks[0].x_train.shape[1]], "hidden": [128, 128]}
    config = config or TrainConfig(seed=seed)
    result = SequenceResult(tasks=[t.name for t in tasks])
    started = time.perf_counter()
    net = net if net is not None else build_network(architecture, seed)
    for step in learn_sequence(tasks, net, method=method, lam=lam, config=config,
                               importance=ImportanceChoice(**(importance_options or {})), importance_on=importance_on,
                               validation_fraction=validation_fraction, lambda_grid=lambda_grid, selection=selection):
        result.lambdas.append(step.learned.lam)
        result.choices.append(step.learned.choice)
        result.training_state_bytes = max(result.training_state_bytes, nbytes(step.learned.method.extra_state()))
        result.state_bytes = max(result.state_bytes, sum(nbytes(e.sums) for e in step.estimates.values()))
        result.matrix.append(step.accuracy)
    result.seconds = time.perf_counter() - started
    return result


@dataclass(frozen=True)
class TaskStep:
    """One task of a sequence, learned and evaluated."""

    learned: LearnedTask  # its network (`learned.net`), λ, method and estimate
    accuracy: dict[str, float]  # every task learned so far, on its test set: a row of the accuracy matrix
    estimates: dict[str, TaskImportance]  # every task's importance estimate so far
    seconds: float  # learning it (every λ tried, Ω) and evaluating, in wall time
    cpu_seconds: float  # the same, in this process's CPU time


def learn_sequence(
    tasks: list[TaskData],
    net: MultiHeadNet,
    *,
    method: str,
    lam: float | str,
    config: TrainConfig,
    importance: ImportanceChoice | None = ImportanceChoice(),
    importance_on: str = "train",
    validation_fraction: float = 0.1,
    lambda_grid: tuple[float, ...] = DEFAULT_GRID,
    selection: Selection = Selection(),
    omega_shape: OmegaShape = OmegaShape(),
    on_trial: TrialObserver | None = None,
) -> Iterator[TaskStep]:
    """Learn `tasks` in order on `net` with one method, yielding each task once it is evaluated.

    `importance_on` picks Ω's inputs (MAS.md §4, Table 3 of the paper): "train" (the task's training
    inputs), "test" (its held-out inputs, unlabelled as in deployment), or "both"; `importance=None`
    measures none. `lam="auto"` holds back `validation_fraction` of each task's training data (split with
    the config's seed, as a train job with that seed does) and chooses λ from `lambda_grid` on every
    task's held-back rows by `selection`, as a train job does. `omega_shape` combines and reshapes the
    earlier tasks' Ω before it anchors each task (app/mas/omega_shape.py; by default summed and left as
    measured). `on_trial` sees every λ trial of every task's search (`learn_task`)."""
    if importance_on not in ("train", "test", "both"):
        raise ValueError("importance_on is 'train', 'test' or 'both'")
    estimates: dict[str, TaskImportance] = {}
    auto = lam == "auto"
    validation: list[ValidationSet] = []
    for index, data in enumerate(tasks):
        started, cpu = time.perf_counter(), time.process_time()
        x_train, y_train = data.x_train, data.y_train
        if auto:
            kept, held = (rows.to(y_train.device) for rows in split_validation(len(y_train), validation_fraction,
                                                                               config.seed))
            validation.append(ValidationSet(data.name, x_train[held], y_train[held]))
            x_train, y_train = x_train[kept], y_train[kept]
        sources = {"train": [(x_train, y_train)], "test": [(data.x_test, data.y_test)]}
        sources["both"] = sources["train"] + sources["test"]
        learned = learn_task(
            net, data.name, int(data.y_train.max()) + 1, x_train, y_train,
            method=MethodChoice(method, 1.0 if auto else float(lam)), theta_star=network_state(net),
            omega=omega_shape.total(estimates.values(), net), config=config,
            importance=importance, importance_data=sources[importance_on],
            lambda_grid=lambda_grid if auto else None, validation=validation, selection=selection,
            on_trial=on_trial,
        )
        net = learned.net
        if learned.estimate is not None:
            estimates[data.name] = learned.estimate
        row = {t.name: accuracy(net, t.name, t.x_test, t.y_test) for t in tasks[: index + 1]}
        yield TaskStep(learned, row, estimates, time.perf_counter() - started, time.process_time() - cpu)
