"""The earlier tasks' Ω reshaped before it anchors θ: per-block scaling, and a penalty on some kinds of layer.

Two ideas from pretrained-trunk continual learning (issue 27, item 3), measured by the paper benchmark:

- **Per-block scaling.** Ω's scale differs by orders of magnitude between blocks (a late block's outputs
  move the network's output more than an early block's), so one λ holds some blocks hard and leaves others
  free. With `scaling="per_block"` each block's Ω is multiplied so that its mean equals the mean of the
  whole Ω: within a block the ranking of parameters is MAS's, across blocks every block weighs the same, and
  λ keeps the scale it has without scaling (one grid serves both).
- **Restricting the penalty.** Smith et al. (2022) found plain L2 on the attention blocks of a pretrained
  transformer alone ahead of EWC. `penalize` keeps Ω only for the parameters of one kind of layer:
  `attention` (parameters under a module whose name says attention, norms excepted), `norm` (layer, batch
  and group norms) or `feed_forward` (everything else: linear and convolution layers outside attention).
  Parameters left out are not anchored and move freely, like a new task's head.

- **Blending instead of summing.** `accumulation="blend"` combines the tasks' estimates as Avalanche and
  FACIL do (app/mas/accumulation.blended_importance): each new task halves the older ones' weight, so the
  penalty does not grow with the number of tasks; `"sum"` is MAS.md §4's rule, the service's.

A block is the module path up to the first numbered part of a parameter's name (`trunk.encoder.layer.4`,
`trunk.blocks.15`, `trunk.0`), or the parameter's own module where its name has no number (`trunk.head.conv`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from torch import Tensor, nn

from app.mas.accumulation import TaskImportance, blended_importance, total_importance

SCALINGS = ("none", "per_block")
PENALIZED = ("all", "attention", "feed_forward", "norm")
ACCUMULATIONS = ("sum", "blend")
_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase)


def block_of(name: str) -> str:
    """The block a parameter belongs to (see the module's docstring)."""
    parts = name.split(".")
    for index, part in enumerate(parts[:-1]):
        if part.isdigit():
            return ".".join(parts[: index + 1])
    return ".".join(parts[:-1])


def kind_of(name: str, module: nn.Module | None) -> str:
    """`norm`, `attention` or `feed_forward`: the kind of layer that parameter `name` of `module` is in."""
    if isinstance(module, _NORMS) or "norm" in type(module).__name__.lower():
        return "norm"
    if any("attention" in part.lower() or "attn" in part.lower() for part in name.split(".")[:-1]):
        return "attention"
    return "feed_forward"


def owners(net: nn.Module) -> dict[str, nn.Module]:
    """Each parameter's qualified name → the module that holds it directly."""
    return {f"{prefix}.{name}" if prefix else name: module for prefix, module in net.named_modules()
            for name, _ in module.named_parameters(recurse=False)}


@dataclass(frozen=True)
class OmegaShape:
    """How the total Ω is reshaped before the penalty (the default leaves it as measured)."""

    scaling: str = "none"
    penalize: str = "all"
    accumulation: str = "sum"

    def __post_init__(self) -> None:
        if self.accumulation not in ACCUMULATIONS:
            raise ValueError(f"accumulation must be one of {ACCUMULATIONS}")
        if self.scaling not in SCALINGS:
            raise ValueError(f"scaling must be one of {SCALINGS}")
        if self.penalize not in PENALIZED:
            raise ValueError(f"penalize must be one of {PENALIZED}")

    @property
    def is_identity(self) -> bool:
        return self.scaling == "none" and self.penalize == "all"

    def total(self, estimates: Iterable[TaskImportance], net: nn.Module) -> dict[str, Tensor]:
        """The earlier tasks' estimates combined by `accumulation`, then reshaped (`apply`)."""
        combine = blended_importance if self.accumulation == "blend" else total_importance
        return self.apply(combine(estimates), net)

    def apply(self, omega: dict[str, Tensor], net: nn.Module) -> dict[str, Tensor]:
        """`omega` (parameter name → Ω of `net`'s parameters) reshaped; the input is not changed."""
        if self.is_identity or not omega:
            return omega
        kept = omega
        if self.penalize != "all":
            modules = owners(net)
            kept = {name: value for name, value in omega.items() if kind_of(name, modules.get(name)) == self.penalize}
        return per_block_scaled(kept) if self.scaling == "per_block" else kept


def per_block_scaled(omega: dict[str, Tensor]) -> dict[str, Tensor]:
    """Ω with each block's mean equal to the mean of all of Ω (a block whose Ω is all zero stays so)."""
    if not omega:
        return omega
    blocks = {name: block_of(name) for name in omega}
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for name, value in omega.items():
        sums[blocks[name]] = sums.get(blocks[name], 0.0) + float(value.double().sum())
        counts[blocks[name]] = counts.get(blocks[name], 0) + value.numel()
    overall = sum(sums.values()) / max(1, sum(counts.values()))
    scaled = {}
    for name, value in omega.items():
        mean = sums[blocks[name]] / counts[blocks[name]]
        scaled[name] = value * (overall / mean) if mean > 0 else value.clone()
    return {name: value.to(omega[name].dtype) for name, value in scaled.items()}

