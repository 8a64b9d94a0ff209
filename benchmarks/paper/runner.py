"""One method over one task sequence, on any network: the app's loop, `app.mas.sequence.learn_sequence`.

`app.mas.sequence.run_sequence` runs that loop on the networks `app.mas.networks.build_network` makes
(mlp, cnn). This benchmark also trains tails of pretrained networks on cached activations (tails.py), so
it takes the network from a factory, and it records what the paper's figures need per step besides the
accuracy matrix: the bytes each method keeps, the λ each task trained with and the seconds each task
took. Methods that never read Ω (fine-tune, LwF) measure none: nothing in a sequence of theirs would
use it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from app.mas.data import TaskData
from app.mas.evaluation import continual_metrics
from app.mas.learn import ImportanceChoice
from app.mas.methods import METHODS
from app.mas.networks import MultiHeadNet
from app.mas.omega_shape import OmegaShape
from app.mas.sequence import learn_sequence, nbytes
from app.mas.training import TrainConfig
from app.mas.validation import DEFAULT_GRID


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
    omega_shape: OmegaShape = OmegaShape(),
) -> Run:
    choice = ImportanceChoice(**(importance_options or {})) if _measures_importance(method) else None
    run = Run(tasks=[t.name for t in tasks])
    for step in learn_sequence(tasks, make_net(), method=method, lam=lam, config=config, importance=choice,
                               importance_on=importance_on, validation_fraction=validation_fraction,
                               lambda_grid=lambda_grid, omega_shape=omega_shape):
        run.lambdas.append(step.learned.lam)
        run.matrix.append(step.accuracy)
        run.seconds.append(step.seconds)
        run.cpu_seconds.append(step.cpu_seconds)
        run.training_bytes.append(nbytes(step.learned.method.extra_state()))
        run.kept_bytes.append(sum(nbytes(e.sums) for e in step.estimates.values()))
        anchored = {n: p for n, p in step.learned.net.named_parameters() if n.startswith("trunk.") and p.requires_grad}
        run.penalty_bytes.append(2 * nbytes(anchored) if step.estimates else 0)
    return run
