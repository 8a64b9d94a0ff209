"""Continual-learning methods, one file each, selectable by name (the API's `method`)."""

from __future__ import annotations

from torch import Tensor

from app.mas.methods.base import Method
from app.mas.methods.finetune import Finetune
from app.mas.methods.mas import MAS, PENALTY_FORMS

METHODS: tuple[str, ...] = ("finetune", "mas")

__all__ = ["METHODS", "MAS", "PENALTY_FORMS", "Finetune", "Method", "make_method"]


def make_method(
    name: str, *, lam: float = 1.0, theta_star: dict[str, Tensor] | None = None,
    omega: dict[str, Tensor] | None = None, form: str = "proximal",
) -> Method:
    """The method the training loop calls, built from the parent version's θ* and total Ω."""
    if name == "finetune":
        return Finetune()
    if name == "mas":
        return MAS(lam=lam, theta_star=theta_star or {}, omega=omega or {}, form=form)
    raise ValueError(f"unknown method {name!r}; choose one of {METHODS}")
