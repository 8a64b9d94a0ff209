"""Continual-learning methods, one file each, selectable by name (the API's `method`).

MAS, L2, EWC and SI share the anchored penalty λ Σ Ω (θ − θ*)² and differ in how Ω is measured;
fine-tune has no penalty; LwF distils the old heads instead of anchoring parameters.
"""

from __future__ import annotations

from torch import Tensor

from app.mas.methods.anchored import PENALTY_FORMS, Anchored
from app.mas.methods.base import Method
from app.mas.methods.ewc import EWC
from app.mas.methods.finetune import Finetune
from app.mas.methods.l2 import L2
from app.mas.methods.lwf import LwF
from app.mas.methods.mas import MAS
from app.mas.methods.si import SI

METHODS: tuple[str, ...] = ("mas", "finetune", "l2", "ewc", "si", "lwf")
_ANCHORED: dict[str, type[Anchored]] = {"mas": MAS, "l2": L2, "ewc": EWC, "si": SI}

__all__ = ["EWC", "L2", "MAS", "METHODS", "PENALTY_FORMS", "SI", "Anchored", "Finetune", "LwF", "Method", "make_method"]


def make_method(
    name: str, *, lam: float = 1.0, theta_star: dict[str, Tensor] | None = None,
    omega: dict[str, Tensor] | None = None, form: str = "proximal",
) -> Method:
    """The method the training loop calls, built from the parent version's θ* and total Ω."""
    if name == "finetune":
        return Finetune()
    if name == "lwf":
        return LwF(lam=lam)
    if name in _ANCHORED:
        return _ANCHORED[name](lam=lam, theta_star=theta_star or {}, omega=omega or {}, form=form)
    raise ValueError(f"unknown method {name!r}; choose one of {METHODS}")
