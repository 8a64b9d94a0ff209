"""Multi-head networks: one shared trunk, one linear head per task (the MAS paper's setting).

A network is described by a small JSON-able architecture dict (what the API stores for a model)
and its state is a flat name→tensor mapping, so a version is just a safetensors file. Heads are
recovered from the state's keys (`heads.<task>.weight`), so θ alone rebuilds the network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from app.mas import task_statistics

TASK_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_MAX_WIDTH = 1 << 16


def _positive_ints(value: object, field: str, *, allow_empty: bool) -> list[int]:
    if not isinstance(value, list | tuple) or (not value and not allow_empty):
        raise ValueError(f"{field} must be a {'' if allow_empty else 'non-empty '}list of positive integers")
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= _MAX_WIDTH for v in value):
        raise ValueError(f"{field} must hold integers between 1 and {_MAX_WIDTH}")
    return list(value)


def validate_architecture(arch: dict) -> dict:
    """Check an architecture dict and return it normalised; a ValueError says what is wrong."""
    if not isinstance(arch, dict):
        raise ValueError("architecture must be an object")
    kind = arch.get("kind")
    if kind == "mlp":
        shape = _positive_ints(arch.get("input_shape"), "input_shape", allow_empty=False)
        if len(shape) != 1:
            raise ValueError("an mlp takes input_shape [d]")
        hidden = _positive_ints(arch.get("hidden", [256, 256]), "hidden", allow_empty=True)
        return {"kind": "mlp", "input_shape": shape, "hidden": hidden}
    if kind == "cnn":
        shape = _positive_ints(arch.get("input_shape"), "input_shape", allow_empty=False)
        if len(shape) != 3:
            raise ValueError("a cnn takes input_shape [c, h, w]")
        channels = _positive_ints(arch.get("channels", [16, 32]), "channels", allow_empty=False)
        hidden = _positive_ints(arch.get("hidden", [128]), "hidden", allow_empty=True)
        return {"kind": "cnn", "input_shape": shape, "channels": channels, "hidden": hidden}
    raise ValueError("architecture.kind must be 'mlp' or 'cnn'")


def _mlp_trunk(input_dim: int, hidden: list[int]) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    width = input_dim
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    return nn.Sequential(*layers), width


def _cnn_trunk(shape: list[int], channels: list[int], hidden: list[int]) -> tuple[nn.Sequential, int]:
    """3×3 convolutions with ReLU; 2×2 max-pooling while the map is at least 2 wide, then an MLP."""
    c, h, w = shape
    layers: list[nn.Module] = []
    for out in channels:
        layers += [nn.Conv2d(c, out, kernel_size=3, padding=1), nn.ReLU()]
        if h >= 2 and w >= 2:
            layers.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
        c = out
    layers.append(nn.Flatten())
    mlp, width = _mlp_trunk(c * h * w, hidden)
    return nn.Sequential(*layers, *mlp), width


@dataclass(frozen=True)
class InputSpec:
    """What one sample looks like once preprocessed: float arrays and images, or token ids (int64)."""

    shape: tuple[int, ...]
    dtype: torch.dtype = torch.float32

    def cast(self, inputs: Tensor) -> Tensor:
        """Inputs in the dtype the trunk takes (float arrays arrive as float64 or float16 too)."""
        return inputs.to(self.dtype)


def builtin_trunk(architecture: dict) -> tuple[nn.Module, int, InputSpec]:
    """The trunk of an `mlp` or `cnn` architecture (already validated), its feature size and input."""
    shape = tuple(architecture["input_shape"])
    if architecture["kind"] == "mlp":
        trunk, width = _mlp_trunk(shape[0], architecture["hidden"])
    else:
        trunk, width = _cnn_trunk(list(shape), architecture["channels"], architecture["hidden"])
    return trunk, width, InputSpec(shape)


class MultiHeadNet(nn.Module):
    """A shared trunk and a ModuleDict of heads; `forward(x, task)` uses only that task's head.

    The trunk is any module mapping a batch of preprocessed inputs to [n, feature_dim] features: the
    built-in MLP and CNN, or a pretrained encoder from an architecture plugin. Parameters named in
    `frozen` (a pretrained trunk's untrained blocks) are left out of `task_parameters`, so they are
    not optimised, carry no Ω and no penalty.
    """

    def __init__(self, trunk: nn.Module, feature_dim: int, input_spec: InputSpec):
        super().__init__()
        task_statistics.adopt(trunk)
        self.trunk = trunk
        self.feature_dim = feature_dim
        self.input_spec = input_spec
        self.heads = nn.ModuleDict()
        self.frozen: frozenset[str] = frozenset()
        self.architecture: dict = {}  # the spec it was built from, where the builder records one

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.input_spec.shape

    def freeze(self, names: set[str] | frozenset[str]) -> None:
        """Hold these trunk parameters fixed: no gradient, no optimiser, no importance."""
        unknown = set(names) - {name for name, _ in self.trunk.named_parameters(prefix="trunk")}
        if unknown:
            raise ValueError(f"not trunk parameters: {sorted(unknown)[:5]}")
        self.frozen = frozenset(names)
        for name, parameter in self.named_parameters():
            parameter.requires_grad_(name not in self.frozen)

    def train(self, mode: bool = True) -> MultiHeadNet:
        """Train mode everywhere but in frozen layers: their batch-norm statistics and dropout stay as
        in eval mode, so a frozen block computes the same function, and holds the same buffers, as before."""
        super().train(mode)
        if mode and self.frozen:
            for prefix, module in self.trunk.named_modules(prefix="trunk"):
                if self._frozen_layer(prefix, module):
                    module.eval()
                elif isinstance(module, nn.Dropout) and self._inside_frozen(prefix):
                    module.eval()
        return self

    def trained_norms(self) -> list[nn.Module]:
        """The batch norms that training moves (those not frozen), each keeping per-task statistics."""
        norms = []
        for prefix, module in self.trunk.named_modules(prefix="trunk"):
            if isinstance(module, task_statistics.PerTask) and not self._frozen_layer(prefix, module):
                norms.append(module)
        return norms

    def has_task_statistics(self) -> bool:
        """Whether some task has batch-norm statistics of its own (then tasks' features may differ)."""
        return any(len(m.task_statistics) for m in self.trunk.modules() if isinstance(m, task_statistics.PerTask))

    def _frozen_layer(self, prefix: str, module: nn.Module) -> bool:
        """A module with parameters of its own, every one of them frozen."""
        own = [f"{prefix}.{name}" for name, _ in module.named_parameters(recurse=False)]
        return bool(own) and all(name in self.frozen for name in own)

    def _inside_frozen(self, prefix: str) -> bool:
        """A parameterless module (dropout) counts as frozen when every parameter of its parent block is."""
        parent = prefix.rsplit(".", 1)[0]
        names = [n for n, _ in self.named_parameters() if n.startswith(parent + ".")]
        return bool(names) and all(n in self.frozen for n in names)

    @property
    def tasks(self) -> dict[str, int]:
        return {task: head.out_features for task, head in self.heads.items()}

    def add_head(self, task: str, num_classes: int, seed: int) -> None:
        """A new task's head, initialised from its own seed so that it never disturbs the trunk's RNG."""
        if not TASK_NAME.match(task):
            raise ValueError(f"task name {task!r} must match {TASK_NAME.pattern}")
        if task in self.heads:
            raise ValueError(f"task {task!r} already has a head")
        if not 2 <= num_classes <= _MAX_WIDTH:
            raise ValueError("num_classes must be between 2 and 65536")
        generator = torch.Generator().manual_seed(seed)
        head = nn.Linear(self.feature_dim, num_classes)
        bound = 1.0 / self.feature_dim**0.5
        with torch.no_grad():
            head.weight.uniform_(-bound, bound, generator=generator)
            head.bias.uniform_(-bound, bound, generator=generator)
        self.heads[task] = head

    def task_parameters(self, task: str) -> dict[str, nn.Parameter]:
        """The trunk and this task's head: all that F(x) of `task` depends on, and all that training it moves."""
        return {
            name: p for name, p in self.named_parameters()
            if (name.startswith("trunk.") and name not in self.frozen) or name.startswith(f"heads.{task}.")
        }

    def forward(self, x: Tensor, task: str) -> Tensor:
        """`task`'s outputs; in eval mode its batch norms use the statistics it was learned with."""
        with task_statistics.for_task(task):
            return self.heads[task](self.trunk(x))


def build_network(architecture: dict, seed: int) -> MultiHeadNet:
    """Version 0 of an `mlp` or `cnn` model: a freshly initialised trunk and no heads."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = MultiHeadNet(*builtin_trunk(validate_architecture(architecture)))
    net.architecture = validate_architecture(architecture)
    return net


def network_state(net: MultiHeadNet) -> dict[str, Tensor]:
    """θ as a flat mapping of contiguous copies, safe to store while the network keeps training."""
    return {name: tensor.detach().clone().contiguous() for name, tensor in net.state_dict().items()}


def load_network(architecture: dict, state: dict[str, Tensor]) -> MultiHeadNet:
    """Rebuild an `mlp` or `cnn` network from θ (see `load_state`)."""
    with torch.random.fork_rng(devices=[]):  # the initial values are overwritten; keep the caller's RNG as it was
        net = MultiHeadNet(*builtin_trunk(validate_architecture(architecture)))
    net.architecture = validate_architecture(architecture)
    return load_state(net, state)


def load_state(net: MultiHeadNet, state: dict[str, Tensor]) -> MultiHeadNet:
    """Put θ into a network; each `heads.<task>.weight` in the state re-creates that head, and each task's
    batch-norm statistics their copy (app/mas/task_statistics.py).

    Heads come back in key order (safetensors sorts names): task order lives with the caller.
    """
    for key, tensor in state.items():
        parts = key.split(".")
        if parts[0] == "heads" and parts[-1] == "weight" and len(parts) == 3 and parts[1] not in net.heads:
            net.heads[parts[1]] = nn.Linear(tensor.shape[1], tensor.shape[0])
    task_statistics.restore_copies(net, state)
    net.load_state_dict(state, strict=True)
    for name, parameter in net.named_parameters():
        parameter.requires_grad_(name not in net.frozen)
    return net
