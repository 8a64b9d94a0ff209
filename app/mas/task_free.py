"""Answers without a task: one class over every class learned, a confidence, and "unknown" (MAS.md §7).

Classes are numbered globally: the tasks in the order learned, each task's classes in its own order.
Every predictor is fitted, from the tasks' class statistics (app/mas/class_statistics.py) and
held-back rows, when a version is made, so a model can switch predictor without re-fitting:
- `max_softmax`, `energy`: route to the task whose head is most confident (its largest softmax
  probability, or the logsumexp of its logits), then that head's argmax (the naive baseline);
- `ncm`: the nearest class mean by cosine similarity;
- `ridge`: a closed-form ridge head over every class, on RanPAC's projection h = ReLU(R f) (or on f
  when no projection is kept), W = (G + ρI)⁻¹ C, ρ chosen on the held-back rows;
- `ridge_routed`: the ridge head chooses the task (the summed probability of its classes), the
  chosen task's own head (trained with MAS) chooses the class.
Each predictor's probabilities get a temperature fitted on the held-back rows (the usual fix for
calibration). "Unknown" is one detector for all predictors: the Mahalanobis distance to the nearest
class mean under the pooled, shrunk covariance of the raw features, with the threshold set on the
held-back rows so that at most `unknown_rate` of them are called unknown.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.nn import functional

from app.mas.class_statistics import ClassStatistics, Projection

PREDICTORS = ("max_softmax", "energy", "ncm", "ridge", "ridge_routed")  # ridge is fitted before ridge_routed
ROUTED = ("max_softmax", "energy", "ridge_routed")  # these need each task head's logits
DEFAULT_PREDICTOR = "ridge"
DEFAULT_UNKNOWN_RATE = 0.05
RIDGE_GRID = tuple(10.0**k for k in range(-8, 5))  # ρ as a multiple of the Gram's mean eigenvalue
SHRINKAGE = 0.1  # of the pooled covariance towards its mean variance, for the unknown detector
ECE_BINS = 15
_TEMPERATURES = torch.logspace(-4, 3, 141, dtype=torch.float64)


@dataclass(frozen=True)
class Catalog:
    """The classes a version can answer: each task's name and size, in the order learned."""

    tasks: tuple[str, ...]
    sizes: tuple[int, ...]

    @property
    def num_classes(self) -> int:
        return sum(self.sizes)

    @property
    def offsets(self) -> list[int]:
        return [sum(self.sizes[:i]) for i in range(len(self.sizes))]

    @property
    def class_task(self) -> Tensor:
        """The task index of each global class [K]."""
        return torch.repeat_interleave(torch.arange(len(self.sizes)), torch.tensor(self.sizes, dtype=torch.long))

    def global_labels(self, task: str, labels: Tensor) -> Tensor:
        return labels.long() + self.offsets[self.tasks.index(task)]


@dataclass
class TaskFreeHead:
    """Everything a task-free answer needs besides the network, as fitted for one version."""

    catalog: Catalog
    means: Tensor  # [K, d] class means of the raw features
    precision: Tensor  # [d, d] inverse of the shrunk pooled covariance
    ridge: Tensor  # [M or d, K]
    projection: Projection | None
    temperatures: dict[str, float]
    threshold: float  # a row whose score is below it is unknown
    rho: float

    def as_tensors(self) -> dict[str, Tensor]:
        """The tensors to store (the projection is stored apart: it is the same for every version)."""
        return {"means": self.means.contiguous(), "precision": self.precision.contiguous(),
                "ridge": self.ridge.contiguous()}

    def as_meta(self) -> dict:
        return {"tasks": list(self.catalog.tasks), "sizes": list(self.catalog.sizes),
                "temperatures": self.temperatures, "threshold": self.threshold, "rho": self.rho}

    @classmethod
    def restore(cls, tensors: dict[str, Tensor], meta: dict, projection: Projection | None) -> TaskFreeHead:
        return cls(Catalog(tuple(meta["tasks"]), tuple(meta["sizes"])), tensors["means"], tensors["precision"],
                   tensors["ridge"], projection, dict(meta["temperatures"]), float(meta["threshold"]),
                   float(meta["rho"]))


@dataclass
class Answer:
    """Per row: the global class, its task, the confidence (0–1), the unknown score and verdict, and the
    calibrated probabilities over every class."""

    classes: Tensor
    tasks: Tensor
    confidence: Tensor
    score: Tensor
    unknown: Tensor
    probabilities: Tensor


@dataclass
class Scores:
    accuracy: float
    task_accuracy: float
    ece: float

    def as_dict(self) -> dict[str, float]:
        return {"accuracy": self.accuracy, "task_accuracy": self.task_accuracy, "ece": self.ece}


@dataclass
class HeldBack:
    """Rows not trained on, with their global labels: where ρ, the temperatures and the threshold are set."""

    features: Tensor  # [n, d]
    labels: Tensor  # [n] global classes
    head_logits: list[Tensor] | None = None  # each task head's logits [n, C_t], for the routed predictors


@dataclass
class Fitted:
    head: TaskFreeHead
    held_back: dict[str, Scores] = field(default_factory=dict)  # each predictor's scores on the held-back rows


def fit(statistics: Sequence[tuple[str, ClassStatistics]], held_back: HeldBack, *,
        projection: Projection | None, unknown_rate: float = DEFAULT_UNKNOWN_RATE) -> Fitted:
    """Fit every predictor from the tasks' statistics (in the order learned) and the held-back rows."""
    catalog = Catalog(tuple(t for t, _ in statistics), tuple(s.num_classes for _, s in statistics))
    stats = [s for _, s in statistics]
    counts = torch.cat([s.counts for s in stats])
    sums = torch.cat([s.sums for s in stats])
    gram = sum((s.gram for s in stats), torch.zeros_like(stats[0].gram))
    means = sums / counts.clamp(min=1)[:, None]
    precision = shrunk_precision(gram, sums, counts)
    if projection is not None:
        p_sums = torch.cat([s.projected_sums for s in stats])  # type: ignore[misc]
        p_gram = sum((s.projected_gram for s in stats), torch.zeros_like(stats[0].projected_gram))  # type: ignore[arg-type]
    else:
        p_sums, p_gram = sums, gram
    h = _ridge_inputs(held_back.features, projection)
    rho, ridge = choose_ridge(p_gram, p_sums.T, h, held_back.labels)
    head = TaskFreeHead(catalog, means.float(), precision.float(), ridge.float(), projection, {}, 0.0, rho)
    scores = mahalanobis_scores(head, held_back.features)
    head.threshold = unknown_threshold(scores, unknown_rate)
    fitted = Fitted(head)
    for predictor in PREDICTORS:
        if predictor in ROUTED and held_back.head_logits is None:
            continue
        choice, log_probs = raw_answer(head, predictor, held_back.features, held_back.head_logits)
        head.temperatures[predictor] = fit_temperature(log_probs, held_back.labels)
        probs = (log_probs / head.temperatures[predictor]).softmax(1)
        fitted.held_back[predictor] = score(choice, probs, held_back.labels, catalog)
    return fitted


def answer(head: TaskFreeHead, predictor: str, f: Tensor, head_logits: list[Tensor] | None = None) -> Answer:
    """The task-free answer for rows with trunk features `f` ([n, d]); the routed predictors also take each
    task head's logits on those rows."""
    choice, log_probs = raw_answer(head, predictor, f, head_logits)
    probs = (log_probs / head.temperatures.get(predictor, 1.0)).softmax(1)
    scores = mahalanobis_scores(head, f)
    return Answer(choice, head.catalog.class_task.to(choice.device)[choice], probs.gather(1, choice[:, None])[:, 0],
                  scores, scores < head.threshold, probs)


def raw_answer(head: TaskFreeHead, predictor: str, f: Tensor,
               head_logits: list[Tensor] | None) -> tuple[Tensor, Tensor]:
    """(global class chosen [n], log-probabilities over every class [n, K] before the temperature)."""
    f = f.float()
    if predictor == "ncm":
        cosine = functional.normalize(f, dim=1) @ functional.normalize(head.means.to(f.device), dim=1).T
        return cosine.argmax(1), cosine.log_softmax(1)
    if predictor == "ridge":
        logits = _ridge_inputs(f, head.projection) @ head.ridge.to(f.device)
        return logits.argmax(1), logits.log_softmax(1)
    if predictor not in ROUTED:
        raise ValueError(f"unknown predictor {predictor!r}: one of {', '.join(PREDICTORS)}")
    if head_logits is None or len(head_logits) != len(head.catalog.tasks):
        raise ValueError(f"the {predictor} predictor needs every task head's logits")
    within = [logits.float().log_softmax(1) for logits in head_logits]
    if predictor == "max_softmax":
        task_score = torch.stack([w.max(1).values for w in within], 1)
    elif predictor == "energy":
        task_score = torch.stack([logits.float().logsumexp(1) for logits in head_logits], 1)
    else:
        # The ridge head's probabilities at its own fitted temperature: raw, they are nearly flat, and their sum
        # over a task's classes would favour the task with the most classes.
        logits = _ridge_inputs(f, head.projection) @ head.ridge.to(f.device)
        ridge = (logits / head.temperatures.get("ridge", 1.0)).softmax(1)
        task_score = torch.stack([part.sum(1) for part in ridge.split(list(head.catalog.sizes), 1)], 1).log()
    task_log_probs = task_score.log_softmax(1)
    log_probs = torch.cat([task_log_probs[:, [t]] + w for t, w in enumerate(within)], 1)
    routed = task_score.argmax(1)
    offsets = torch.tensor(head.catalog.offsets, device=f.device)
    within_choice = torch.stack([w.argmax(1) for w in within], 1).gather(1, routed[:, None])[:, 0]
    return offsets[routed] + within_choice, log_probs


def _ridge_inputs(f: Tensor, projection: Projection | None) -> Tensor:
    return projection(f.float()) if projection is not None else f.float()


def choose_ridge(gram: Tensor, targets: Tensor, h: Tensor, labels: Tensor) -> tuple[float, Tensor]:
    """(ρ, W = (G + ρI)⁻¹ C): ρ from RIDGE_GRID × G's mean eigenvalue, the best held-back accuracy
    winning (a tie to the larger ρ, the smoother head). One eigendecomposition serves every ρ."""
    eigenvalues, vectors = torch.linalg.eigh(gram.double())
    eigenvalues = eigenvalues.clamp(min=0)
    scale = float(eigenvalues.mean()) or 1.0
    projected_targets = vectors.T @ targets.double()  # Qᵀ C
    rows = h.double() @ vectors  # h Q
    best: tuple[float, float] | None = None
    for multiple in RIDGE_GRID:
        rho = multiple * scale
        logits = (rows / (eigenvalues + rho)) @ projected_targets
        correct = float((logits.argmax(1) == labels).double().mean()) if len(labels) else 0.0
        if best is None or correct >= best[1]:
            best = (rho, correct)
    assert best is not None
    rho = best[0]
    return rho, vectors @ (projected_targets / (eigenvalues + rho)[:, None])


def ridge_solve(gram: Tensor, targets: Tensor, rho: float) -> Tensor:
    """W = (G + ρI)⁻¹ C by a direct solve (the reference `choose_ridge` is tested against)."""
    eye = torch.eye(gram.shape[0], dtype=torch.float64)
    return torch.linalg.solve(gram.double() + rho * eye, targets.double())


def shrunk_precision(gram: Tensor, sums: Tensor, counts: Tensor) -> Tensor:
    """The inverse of the pooled within-class covariance Σ = G/n − Σ_c n_c μ_c μ_cᵀ / n, shrunk by
    SHRINKAGE towards its mean variance (Σ is singular when rows are fewer than features)."""
    n = float(counts.sum())
    means = sums / counts.clamp(min=1)[:, None]
    covariance = gram / n - (means.T * counts) @ means / n
    d = covariance.shape[0]
    target = float(torch.trace(covariance)) / d or 1.0
    shrunk = (1 - SHRINKAGE) * covariance + SHRINKAGE * target * torch.eye(d, dtype=covariance.dtype)
    return torch.linalg.inv(shrunk)


def mahalanobis_scores(head: TaskFreeHead, f: Tensor) -> Tensor:
    """Minus the squared Mahalanobis distance to the nearest class mean: higher is more familiar."""
    f = f.float()
    precision, means = head.precision.to(f.device), head.means.to(f.device)
    fp = f @ precision
    distances = (fp * f).sum(1)[:, None] - 2 * fp @ means.T + ((means @ precision) * means).sum(1)[None, :]
    return -distances.min(1).values


def unknown_threshold(scores: Tensor, rate: float) -> float:
    """The score below which a row is unknown: floor(rate·n) held-back rows lie strictly below it, so at
    most `rate` of them are called unknown."""
    if not len(scores):
        return -math.inf
    ordered = scores.double().sort().values
    index = math.floor(rate * len(ordered))
    return float(ordered[index]) if index < len(ordered) else math.inf


def fit_temperature(log_probs: Tensor, labels: Tensor) -> float:
    """The temperature T minimising the held-back negative log-likelihood of softmax(log p / T)."""
    if not len(labels):
        return 1.0
    log_probs = log_probs.double()
    losses = torch.stack([functional.cross_entropy(log_probs / t, labels) for t in _TEMPERATURES])
    losses = torch.nan_to_num(losses, nan=math.inf)
    return float(_TEMPERATURES[int(losses.argmin())])


def expected_calibration_error(confidence: Tensor, correct: Tensor, bins: int = ECE_BINS) -> float:
    """Σ_b (n_b / n)·|accuracy_b − mean confidence_b| over equal-width bins of the confidence."""
    if not len(confidence):
        return math.nan
    confidence, correct = confidence.double(), correct.double()
    index = (confidence * bins).long().clamp(0, bins - 1)
    total = 0.0
    for b in range(bins):
        inside = index == b
        if inside.any():
            total += float(inside.double().mean()) * abs(float(correct[inside].mean() - confidence[inside].mean()))
    return total


def score(choice: Tensor, probs: Tensor, labels: Tensor, catalog: Catalog) -> Scores:
    """Accuracy over every class, task-inference accuracy and ECE of answers to labelled rows."""
    if not len(labels):
        return Scores(math.nan, math.nan, math.nan)
    class_task = catalog.class_task.to(choice.device)
    correct = choice == labels
    confidence = probs.gather(1, choice[:, None])[:, 0]
    return Scores(float(correct.double().mean()), float((class_task[choice] == class_task[labels]).double().mean()),
                  expected_calibration_error(confidence, correct))
