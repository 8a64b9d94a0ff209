"""One method over one task sequence, on any network: `learn_task` per task, as a train job learns it.

`app.mas.sequence.run_sequence` does this for the networks `app.mas.networks.build_network` makes (mlp,
cnn). This benchmark also trains tails of pretrained networks on cached activations (tails.py), so it
takes the network from a factory, and it records what the paper's figures need per step besides the
accuracy matrix: the bytes each method keeps, the λ each task trained with and the seconds each task
took. The loop is run_sequence's, step for step: λ "auto" holds back `validation_fraction` of each
task's training rows (split_validation with the run's seed, as a train job with that seed does) and
searches `lambda_grid` on every task's held-back rows; Ω comes from the task's training inputs, its
eval inputs (unlabelled, "deployment") or both. Methods that never read Ω (fine-tune, LwF) measure none:
nothing in a sequence of theirs would use it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from app.mas.accumulation import TaskImportance, total_importance
from app.mas.data import TaskData
from app.mas.evaluation import accuracy, continual_metrics
from app.mas.learn import ImportanceChoice, MethodChoice, learn_task
from app.mas.methods import METHODS
from app.mas.networks import MultiHeadNet, network_state
from app.mas.sequence import nbytes
from app.mas.training import TrainConfig
from app.mas.validation import DEFAULT_GRID, ValidationSet, split_validation


@dataclass
class Run:
    tasks: list[str]
    matrix: list[dict[str, float]] = field(default_factory=list)
    lambdas: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # per task: training (every λ tried), Ω, evaluation
    cpu_seconds: list[float] = field(default_factory=list)  # the same, in this process's CPU time
    kept_bytes: list[int] = field(default_factory=list)  # after each task: every task's importance estimate
    penalty_bytes: list[int] = field(default_factory=list)  # what the next task's penalty holds: θ* and Ω
    training_bytes: list[int] = field(default_factory=list)  # the method's own state while training

    def as_dict(self) -> dict:
        return asdict(self) | {"summary": continual_metrics(self.matrix, self.tasks)}


def _measures_importance(method: str) -> bool:
    return METHODS[method].anchored


def run_tasks(
    tasks: list[TaskData],
    make_net: Callable[[], MultiHeadNet],
    *,
    method: str,
    lam: float | str,
    config: TrainConfig,
    importance_options: dict | None = None,
    importance_on: str = "train",
    validation_fraction: float = 0.1,
    lambda_grid: tuple[float, ...] = DEFAULT_GRID,
) -> Run:
    net = make_net()
    choice = ImportanceChoice(**(importance_options or {})) if _measures_importance(method) else None
    estimates: dict[str, TaskImportance] = {}
    run = Run(tasks=[t.name for t in tasks])
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
        omega = total_importance(estimates.values())
        learned = learn_task(
            net, data.name, int(data.y_train.max()) + 1, x_train, y_train,
            method=MethodChoice(method, 1.0 if auto else float(lam)), theta_star=network_state(net),
            omega=omega, config=config, importance=choice, importance_data=sources[importance_on],
            lambda_grid=lambda_grid if auto else None, validation=validation,
        )
        net = learned.net
        run.lambdas.append(learned.lam)
        if learned.estimate is not None:
            estimates[data.name] = learned.estimate
        run.matrix.append({t.name: accuracy(net, t.name, t.x_test, t.y_test) for t in tasks[: index + 1]})
        run.seconds.append(time.perf_counter() - started)
        run.cpu_seconds.append(time.process_time() - cpu)
        run.training_bytes.append(nbytes(learned.method.extra_state()))
        run.kept_bytes.append(sum(nbytes(e.sums) for e in estimates.values()))
        anchored = {n: p for n, p in net.named_parameters() if n.startswith("trunk.") and p.requires_grad}
        run.penalty_bytes.append(2 * nbytes(anchored) if estimates else 0)
    return run
