"""Whether a job's new version becomes `production`: the promotion decision, a pure function.

A model's policy says when a version a job made is promoted (moves `production`, which predictions and
new tasks use) or only kept (recorded, with the `candidate` alias moved to it):
- `auto`: always, if production is still the version the job started from (otherwise the job conflicts
  and creates nothing, as before aliases existed);
- `manual`: never; a person promotes the candidate;
- `guarded`: a train job's version only when, on every earlier task's eval set, its accuracy is at most
  `max_forgetting` below the base version's (an absolute drop: 0.05 is five points of accuracy), and its
  accuracy on the new task is at least `min_accuracy` (when set). A refresh of importance does not change
  θ, so it is promoted when it starts from production.
Under `manual` and `guarded` a job whose base is no longer production is kept, never promoted: promoting
it would silently undo whatever moved production meanwhile.

The policy itself (its fields and defaults) is the shape of the model's column, app/db/promotion.py.
Nothing here reads a table: `app/versions/service.py` calls `decide` under the model's row lock, with the
accuracies it already holds, and the unit tests call it on tables of accuracies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from app.db.promotion import Policy, PromotionPolicy

# Accuracies are fractions k/n: 1.0 − 0.95 is 0.05000000000000004 in floats, and must not count as a drop
# past 0.05.
TOLERANCE = 1e-9
TASK_FREE = "(task-free)"  # what a violation of min_task_free_accuracy names as its task


@dataclass(frozen=True)
class Violation:
    """A rule the new version broke on one task: `max_forgetting` (before → after, drop) or `min_accuracy`."""

    task: str
    rule: Literal["max_forgetting", "min_accuracy", "min_task_free_accuracy", "max_negative_flip_rate"]
    before: float | None
    after: float
    drop: float | None
    limit: float


@dataclass(frozen=True)
class Decision:
    promoted: bool
    policy: Policy
    reason: str
    violations: tuple[Violation, ...] = ()
    unchecked: tuple[str, ...] = field(default=())  # tasks whose accuracy could not be checked (no eval set)
    conflict: bool = False  # auto, and production moved: the job must create nothing

    @property
    def alias(self) -> str:
        """The alias the version moves: production when promoted, else candidate."""
        return "production" if self.promoted else "candidate"

    def as_dict(self) -> dict[str, Any]:
        """As the job's `result.promotion` shows it."""
        return {"promoted": self.promoted, "policy": self.policy, "alias": self.alias, "reason": self.reason,
                "violations": [asdict(v) for v in self.violations], "unchecked": list(self.unchecked)}


def decide(policy: PromotionPolicy, *, kind: str, task: str | None, base: int, production: int,
           earlier_tasks: Sequence[str] = (), before: Mapping[str, float] | None = None,
           after: Mapping[str, float] | None = None, task_free_accuracy: float | None = None,
           negative_flips: Mapping[str, float] | None = None) -> Decision:
    """The fate of a version made by a `kind` job ("train" or "importance") from version `base`, while
    production is `production`. `before` is the base version's accuracy per task, `after` the new
    version's; `earlier_tasks` are the tasks the base had learned (those without an eval set have no
    accuracy and are reported as unchecked); `task_free_accuracy` is the new version's task-free accuracy
    over the eval sets of every task (None: not measured); `negative_flips` the new version's negative flip
    rate against its base on each earlier task's eval set."""
    name = policy.policy
    if base != production:
        moved = f"production moved from version {base} to {production} while this job ran"
        if name == "auto":
            return Decision(False, name, f"{moved}, so it created nothing; submit it again on the new production",
                            conflict=True)
        return Decision(False, name, f"{moved}: the version is kept as candidate, not promoted")
    if name == "auto":
        return Decision(True, name, "policy auto: a successful job moves production")
    if name == "manual":
        return Decision(False, name, "policy manual: the version waits as candidate until production is moved "
                                     "to it (PUT …/aliases/production, or `lifelong promote`)")
    if kind != "train":
        return Decision(True, name, "policy guarded: a refresh of importance that starts from production is "
                                    "promoted (θ is unchanged)")
    return _guarded_train(policy, task or "", earlier_tasks, before or {}, after or {}, task_free_accuracy,
                          negative_flips or {})


def _guarded_train(policy: PromotionPolicy, task: str, earlier_tasks: Sequence[str], before: Mapping[str, float],
                   after: Mapping[str, float], task_free_accuracy: float | None,
                   negative_flips: Mapping[str, float]) -> Decision:
    violations: list[Violation] = []
    known = dict.fromkeys([*earlier_tasks, *before])
    unchecked = [t for t in known if t != task and (t not in before or t not in after)]
    for earlier, was in before.items():
        if earlier == task or earlier not in after:
            continue
        drop = was - after[earlier]
        if drop > policy.max_forgetting + TOLERANCE:
            violations.append(Violation(earlier, "max_forgetting", was, after[earlier], drop, policy.max_forgetting))
    reasons = [f"accuracy on task {v.task!r} dropped by {v.drop:.4f} ({v.before:.4f} → {v.after:.4f}), more than "
               f"max_forgetting {v.limit}" for v in violations]
    blocked_by_unchecked = False
    if policy.min_accuracy is not None:
        if task not in after:
            unchecked.append(task)
            blocked_by_unchecked = True
            reasons.append(f"the new task {task!r} has no eval set, so min_accuracy {policy.min_accuracy} could not "
                           "be checked")
        elif after[task] < policy.min_accuracy - TOLERANCE:
            violations.append(Violation(task, "min_accuracy", None, after[task], None, policy.min_accuracy))
            reasons.append(f"accuracy on the new task {task!r} is {after[task]:.4f}, below min_accuracy "
                           f"{policy.min_accuracy}")
    elif task not in after:
        unchecked.append(task)
    flip_limit = policy.max_negative_flip_rate
    if flip_limit is not None:
        for earlier, rate in negative_flips.items():
            if earlier != task and rate > flip_limit + TOLERANCE:
                violations.append(Violation(earlier, "max_negative_flip_rate", None, rate, None, flip_limit))
                reasons.append(f"{rate:.4f} of task {earlier!r}'s eval rows that the base answered right are now "
                               f"wrong (negative flips), more than max_negative_flip_rate {flip_limit}")
    limit = policy.min_task_free_accuracy
    if limit is not None:
        if task_free_accuracy is None:
            blocked_by_unchecked = True
            unchecked.append(TASK_FREE)
            reasons.append(f"no task-free accuracy was measured (no eval sets), so min_task_free_accuracy {limit} "
                           "could not be checked")
        elif task_free_accuracy < limit - TOLERANCE:
            violations.append(Violation(TASK_FREE, "min_task_free_accuracy", None, task_free_accuracy, None, limit))
            reasons.append(f"task-free accuracy over every class is {task_free_accuracy:.4f}, below "
                           f"min_task_free_accuracy {limit}")
    if violations or blocked_by_unchecked:
        return Decision(False, "guarded", "policy guarded, not promoted: " + "; ".join(reasons), tuple(violations),
                        tuple(unchecked))
    reason = f"policy guarded: no earlier task's accuracy dropped by more than {policy.max_forgetting}"
    if policy.min_accuracy is not None:
        reason += f", and the new task's is at least {policy.min_accuracy}"
    if limit is not None:
        reason += f", and the task-free accuracy is at least {limit}"
    if flip_limit is not None:
        reason += f", and no earlier task's negative flip rate is above {flip_limit}"
    if unchecked:
        reason += f" (unchecked, no eval set: {', '.join(repr(t) for t in unchecked)})"
    return Decision(True, "guarded", reason, (), tuple(unchecked))
