"""What a model's `promotion` column holds: the policy's name and limits, with their defaults.

The table gives new rows the default policy, and app/aliases/promotion.py decides with it, so the
shape lives here, below both: the tables import nothing from the packages that use them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

Policy = Literal["auto", "manual", "guarded"]
POLICIES: tuple[Policy, ...] = ("auto", "manual", "guarded")
DEFAULT_MAX_FORGETTING = 0.05


@dataclass(frozen=True)
class PromotionPolicy:
    policy: Policy = "guarded"
    max_forgetting: float = DEFAULT_MAX_FORGETTING
    min_accuracy: float | None = None
    min_task_free_accuracy: float | None = None
    max_negative_flip_rate: float | None = None

    @classmethod
    def of(cls, stored: Mapping[str, Any]) -> PromotionPolicy:
        return cls(stored["policy"], stored.get("max_forgetting", DEFAULT_MAX_FORGETTING), stored.get("min_accuracy"),
                   stored.get("min_task_free_accuracy"), stored.get("max_negative_flip_rate"))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
