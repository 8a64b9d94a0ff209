"""What an architecture kind is: the small interface the registry, the service and plugins share.

A kind (`architecture.kind` in a model's spec) knows how to check its spec, build its trunk (a module
mapping preprocessed inputs to [n, feature_dim] features), cut the trunk into ordered blocks (what
`trainable: {"last": N}` counts and what θ is stored by), and turn raw inputs (arrays, texts, image
bytes) into the tensor the trunk takes. Heads, freezing and θ loading stay in app.mas.networks;
a plugin subclasses `Architecture` and names it under the entry point group `lifelong.architectures`.
`Architecture` is generic in the form of its validated spec (app/architectures/spec.py): a built-in kind
names its own TypedDict (`Architecture[MLPSpec]`), a plugin may name its own or none.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Generic, Literal, TypeVar

from torch import Tensor, nn

from app.architectures.spec import ArchitectureSpec, Trainable
from app.mas.frozen_prefix import TrunkSplit
from app.mas.networks import InputSpec

InputKind = Literal["array", "text", "image"]
SpecT = TypeVar("SpecT", bound=ArchitectureSpec)  # the validated spec form a kind takes
TRAINABLE_DESCRIPTION = (
    '"all" (every trunk parameter learns), "none" (frozen features: heads only) or {"last": N} '
    "(only the last N blocks of the trunk learn)"
)


class Architecture(ABC, Generic[SpecT]):
    """One architecture kind. Instances hold no model state: every method takes the validated spec."""

    kind: str
    input_kind: InputKind = "array"
    # Whether version 0 starts from shipped pretrained weights: their features already mean something,
    # so a new head is warmed up on them under head_warmup "auto" (app/mas/head_warmup.py).
    pretrained_weights: bool = False

    @abstractmethod
    def options(self) -> dict[str, dict[str, Any]]:
        """Option name → {"default", "description"}, as GET /v1/architectures lists them."""

    @abstractmethod
    def validate(self, spec: dict[str, Any]) -> SpecT:
        """The spec normalised (defaults filled in, "kind" and "trainable" included); ValueError says what is wrong."""

    @abstractmethod
    def build_trunk(self, spec: SpecT, *, pretrained: bool, seed: int) -> tuple[nn.Module, int, InputSpec]:
        """The trunk, its feature size and its input. `pretrained` loads the shipped weights (version 0's θ);
        without it only the shapes matter, since θ is loaded afterwards. `seed` is for kinds that draw
        their initial values themselves; the registry seeds torch's RNG with it as well."""

    @abstractmethod
    def blocks(self, spec: SpecT, trunk: nn.Module) -> list[list[str]]:
        """Ordered groups of trunk parameter names ("trunk."-prefixed), input side first; each trunk
        parameter in exactly one group."""

    @abstractmethod
    def preprocess(self, spec: SpecT, raw: Sequence[Any]) -> Tensor:
        """Raw inputs (arrays, texts or encoded images, per `input_kind`) as one batch for the trunk."""

    def trunk_split(self, spec: SpecT, trunk: nn.Module, start: int) -> TrunkSplit | None:
        """Optional: the trunk split before block `start` (the first that trains; `len(blocks)` when none
        does) into a frozen prefix a job computes once for its rows and the suffix that trains
        (app/mas/frozen_prefix.py). None (the default): the job runs the whole trunk every time."""
        return None


def parameter_groups(trunk: nn.Module, prefixes: Sequence[str]) -> list[list[str]]:
    """Trunk parameters grouped by module prefix (relative to the trunk), in the order of `prefixes`;
    a parameter matching no prefix is an error, so that blocks always cover the whole trunk."""
    groups: list[list[str]] = [[] for _ in prefixes]
    for name, _ in trunk.named_parameters():
        index = next((i for i, p in enumerate(prefixes) if name == p or name.startswith(p + ".")), None)
        if index is None:
            raise ValueError(f"trunk parameter {name} belongs to no block")
        groups[index].append(f"trunk.{name}")
    return [group for group in groups if group]


def check_options(spec: dict, known: set[str]) -> None:
    """Unknown option names are refused rather than ignored: a typo must not silently change nothing."""
    if not isinstance(spec, dict):
        raise ValueError("architecture must be an object")
    unknown = sorted(set(spec) - known - {"kind", "trainable"})
    if unknown:
        raise ValueError(f"architecture {spec.get('kind')!r} has no option {unknown[0]!r}; options: {sorted(known)}")


def normalise_trainable(value: Any, n_blocks: int) -> Trainable:
    """`trainable` checked against the number of blocks: "all", "none" or {"last": N}, 0 ≤ N ≤ n_blocks."""
    if value in ("all", "none"):
        return value
    if isinstance(value, dict) and set(value) == {"last"}:
        last = value["last"]
        if isinstance(last, int) and not isinstance(last, bool) and 0 <= last <= n_blocks:
            return {"last": last}
        raise ValueError(f"trainable.last must be an integer between 0 and {n_blocks} (the trunk's blocks)")
    raise ValueError(f"trainable must be {TRAINABLE_DESCRIPTION}")


def trainable_option(default: Trainable) -> dict[str, Any]:
    return {"default": default, "description": TRAINABLE_DESCRIPTION}
