"""A task sequence run end to end in memory: what the service does across versions, in one loop.

Used by the demo, the learning tests and the benchmarks. After each task it closes the open
importance estimate, measures Ω on the task's training inputs (MAS.md §4), and evaluates every
task learned so far, so the result is the accuracy matrix that the service reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.mas.accumulation import ImportanceState
from app.mas.data import TaskData
from app.mas.evaluation import accuracy, continual_metrics
from app.mas.methods import make_method
from app.mas.networks import build_network, network_state
from app.mas.training import TrainConfig, train_task


@dataclass
class SequenceResult:
    tasks: list[str]
    matrix: list[dict[str, float]] = field(default_factory=list)

    @property
    def summary(self) -> dict[str, float | None]:
        return continual_metrics(self.matrix, self.tasks)


def run_sequence(
    tasks: list[TaskData],
    *,
    method: str,
    lam: float = 1.0,
    architecture: dict | None = None,
    config: TrainConfig | None = None,
    seed: int = 0,
    importance_options: dict | None = None,
) -> SequenceResult:
    architecture = architecture or {"kind": "mlp", "input_shape": [tasks[0].x_train.shape[1]], "hidden": [128, 128]}
    config = config or TrainConfig(seed=seed)
    net = build_network(architecture, seed)
    importance = ImportanceState.empty()
    result = SequenceResult(tasks=[t.name for t in tasks])
    for index, data in enumerate(tasks):
        learner = make_method(method, lam=lam, theta_star=network_state(net), omega=importance.total())
        num_classes = int(data.y_train.max()) + 1
        train_task(net, data.name, num_classes, data.x_train, data.y_train, learner, config)
        measured = learner.task_importance(net, data.name, data.x_train, data.y_train, importance_options)
        importance = importance.close_task().accumulate(measured)
        result.matrix.append({t.name: accuracy(net, t.name, t.x_test, t.y_test) for t in tasks[: index + 1]})
    return result
