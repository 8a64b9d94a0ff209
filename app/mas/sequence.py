"""A task sequence run end to end in memory: what the service does across versions, in one loop.

Used by the demo, the learning tests and the benchmarks. Each task is learned by `learn_task`, as a
train job learns it (training, then the task's own Ω estimate, MAS.md §4); then every task learned
so far is evaluated, so the result is the accuracy matrix that the service reports.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from torch import Tensor

from app.mas.accumulation import TaskImportance, total_importance
from app.mas.data import TaskData
from app.mas.evaluation import accuracy, continual_metrics
from app.mas.learn import ImportanceChoice, MethodChoice, learn_task
from app.mas.networks import build_network, network_state
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
) -> SequenceResult:
    """Train `tasks` in order with one method; `importance_on` picks Ω's inputs (MAS.md §4, Table 3 of
    the paper): "train" (the task's training inputs), "test" (its held-out inputs, unlabelled as in
    deployment), or "both". `lam="auto"` holds back `validation_fraction` of each task's training data
    and chooses λ from `lambda_grid` on every task's held-back rows by `selection`, as a train job does;
    the chosen λ per task is in `SequenceResult.lambdas`, how it was chosen in `SequenceResult.choices`."""
    if importance_on not in ("train", "test", "both"):
        raise ValueError("importance_on is 'train', 'test' or 'both'")
    architecture = architecture or {"kind": "mlp", "input_shape": [tasks[0].x_train.shape[1]], "hidden": [128, 128]}
    config = config or TrainConfig(seed=seed)
    net = build_network(architecture, seed)
    choice = ImportanceChoice(**(importance_options or {}))
    estimates: dict[str, TaskImportance] = {}
    result = SequenceResult(tasks=[t.name for t in tasks])
    started = time.perf_counter()
    auto = lam == "auto"
    validation: list[ValidationSet] = []
    for index, data in enumerate(tasks):
        x_train, y_train = data.x_train, data.y_train
        if auto:
            kept, held = split_validation(len(y_train), validation_fraction, config.seed)
            validation.append(ValidationSet(data.name, x_train[held], y_train[held]))
            x_train, y_train = x_train[kept], y_train[kept]
        sources = {"train": [(x_train, y_train)], "test": [(data.x_test, data.y_test)]}
        sources["both"] = sources["train"] + sources["test"]
        learned = learn_task(
            net, data.name, int(data.y_train.max()) + 1, x_train, y_train,
            method=MethodChoice(method, 1.0 if auto else float(lam)), theta_star=network_state(net),
            omega=total_importance(estimates.values()), config=config,
            importance=choice, importance_data=sources[importance_on],
            lambda_grid=lambda_grid if auto else None, validation=validation, selection=selection,
        )
        net = learned.net
        result.lambdas.append(learned.lam)
        result.choices.append(learned.choice)
        if learned.estimate is not None:
            estimates[data.name] = learned.estimate
        result.training_state_bytes = max(result.training_state_bytes, nbytes(learned.method.extra_state()))
        result.state_bytes = max(result.state_bytes, sum(nbytes(e.sums) for e in estimates.values()))
        result.matrix.append({t.name: accuracy(net, t.name, t.x_test, t.y_test) for t in tasks[: index + 1]})
    result.seconds = time.perf_counter() - started
    return result
