"""One task's network as a standalone graph (trunk + that task's head), and its ONNX and TorchScript files.

A `TaskGraph` wraps a loaded MultiHeadNet so that it takes what a caller outside the service has and
answers `(logits, probabilities)`, with as much of the kind's preprocessing inside the graph as a
graph can hold:

- `mlp`, `cnn`: `input` float32 [batch, prod(input_shape)], flat rows as in a CSV; the graph reshapes
  them to input_shape.
- `image-backbone`: `image` uint8 [batch, S, S, 3] (RGB, channels last: `np.asarray` of a PIL image);
  the graph normalises ((x − 127) / 128) and moves the channels. Decoding, the resize of the shorter
  side to S (bicubic) and the centre crop stay with the caller: they are Pillow's, not the graph's.
- `text-encoder`: `input_ids` and `attention_mask` int64 [batch, sequence], from the model's own
  tokenizer (padding and truncation to max_length); tokenisation stays outside. The graph pools over
  the mask instead of cutting padding columns, which the service does to save time and which gives
  the same features.
- any other kind (a plugin): the trunk's own input (`input`, the dtype and shape its InputSpec says).

Both formats are traced (torch.jit.trace; ONNX through torch's TorchScript-based exporter, which
needs no onnxscript). A trace records one run's operations, so a forward that branches on its
inputs' values would be exported wrong without a word: every graph is therefore traced on two rows
and compared with the eager network on three other rows, and refused (`ExportRefused`, said as a
422) when they differ or when tracing fails. Only torch here, plus onnx for the file's metadata.
"""

from __future__ import annotations

import io
import json
import math
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as functional
from torch import Tensor, nn

from app.mas.networks import MultiHeadNet
from app.mas.task_statistics import for_task

ExportFormat = Literal["onnx", "torchscript"]
ONNX_OPSET = 17
TRACE_TOLERANCE = 1e-4  # max abs difference of logits between the traced graph and the eager network
IMAGE_MEAN, IMAGE_STD = 127.0, 128.0  # as app/architectures/image.py normalises
OUTPUTS = ("logits", "probabilities")

# torch.onnx keeps its exporter's state in module globals: one export at a time per process.
_EXPORTING = threading.Lock()


class ExportRefused(ValueError):
    """This network cannot be exported in this form; the message says why."""


class NotInstalled(RuntimeError):
    """The server lacks a package the export needs (the `export` extra)."""


class _Scores(nn.Module):
    """Logits of one head, and their softmax (what the service answers as probabilities)."""

    def __init__(self, head: nn.Linear):
        super().__init__()
        self.head = head

    def scores(self, features: Tensor) -> tuple[Tensor, Tensor]:
        logits = self.head(features)
        return logits, logits.softmax(1)


class ArrayGraph(_Scores):
    def __init__(self, net: MultiHeadNet, task: str):
        super().__init__(net.heads[task])
        self.trunk, self.shape = net.trunk, tuple(net.input_shape)

    def forward(self, input: Tensor) -> tuple[Tensor, Tensor]:  # noqa: A002 - the graph's input name
        return self.scores(self.trunk(input.reshape(-1, *self.shape)))


class ImageGraph(_Scores):
    def __init__(self, net: MultiHeadNet, task: str):
        super().__init__(net.heads[task])
        self.trunk = net.trunk

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        x = (image.to(torch.float32) - IMAGE_MEAN) / IMAGE_STD
        return self.scores(self.trunk(x.permute(0, 3, 1, 2)))


class TextGraph(_Scores):
    """The text-encoder trunk's computation (app/architectures/text.py) with the mask as an input."""

    def __init__(self, net: MultiHeadNet, task: str):
        super().__init__(net.heads[task])
        self.embeddings, self.layers, self.normalize = net.trunk.embeddings, net.trunk.layers, net.trunk.normalize

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:
        hidden = self.embeddings(input_ids=input_ids, token_type_ids=torch.zeros_like(input_ids))
        mask = attention_mask.to(hidden.dtype)
        additive = (1.0 - mask)[:, None, None, :] * torch.finfo(hidden.dtype).min
        for layer in self.layers:
            hidden = layer(hidden, additive)
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden
        weights = mask.unsqueeze(-1)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return self.scores(functional.normalize(pooled, p=2, dim=1) if self.normalize else pooled)


class TrunkGraph(_Scores):
    def __init__(self, net: MultiHeadNet, task: str):
        super().__init__(net.heads[task])
        self.trunk = net.trunk

    def forward(self, input: Tensor) -> tuple[Tensor, Tensor]:  # noqa: A002 - the graph's input name
        return self.scores(self.trunk(input))


@dataclass(frozen=True)
class GraphInput:
    name: str
    dtype: str  # as numpy names it: float32, uint8, int64
    shape: list[int | str]  # "batch" and "sequence" are the dynamic axes


@dataclass(frozen=True)
class TaskGraph:
    """A task's network as a graph: its module (eval mode), its inputs, and rows to trace and check it on."""

    module: nn.Module
    inputs: list[GraphInput]
    example: Callable[[int], tuple[Tensor, ...]]  # rows -> inputs, deterministic
    task: str  # traced and exported with its batch-norm statistics (app/mas/task_statistics.py)

    @property
    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        axes = {i.name: {d: str(s) for d, s in enumerate(i.shape) if isinstance(s, str)} for i in self.inputs}
        return {**axes, **{name: {0: "batch"} for name in OUTPUTS}}


def task_graph(net: MultiHeadNet, task: str, kind: str) -> TaskGraph:
    """The graph of `task` on `net` (built by the kind `kind`), in eval mode."""
    if task not in net.heads:
        raise ExportRefused(f"the network has no head {task!r}")
    generator = torch.Generator().manual_seed(0)
    if kind in ("mlp", "cnn"):
        width = math.prod(net.input_shape)
        return TaskGraph(ArrayGraph(net, task).eval(), [GraphInput("input", "float32", ["batch", width])],
                         lambda n: (torch.randn(n, width, generator=generator),), task)
    if kind == "image-backbone":
        size = net.input_shape[-1]
        return TaskGraph(ImageGraph(net, task).eval(), [GraphInput("image", "uint8", ["batch", size, size, 3])],
                         lambda n: (torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8, generator=generator),),
                         task)
    if kind == "text-encoder":
        return _text_graph(net, task, generator)
    spec = net.input_spec

    def example(n: int) -> tuple[Tensor]:
        if spec.dtype.is_floating_point:
            return (torch.randn(n, *spec.shape, generator=generator).to(spec.dtype),)
        return (torch.randint(0, 2, (n, *spec.shape), generator=generator).to(spec.dtype),)

    dtype = str(spec.dtype).removeprefix("torch.")
    return TaskGraph(TrunkGraph(net, task).eval(), [GraphInput("input", dtype, ["batch", *spec.shape])], example, task)


def _text_graph(net: MultiHeadNet, task: str, generator: torch.Generator) -> TaskGraph:
    length, pad = net.input_shape[0], net.trunk.pad_id
    vocabulary = net.trunk.embeddings.word_embeddings.num_embeddings

    def example(n: int) -> tuple[Tensor, Tensor]:
        ids = torch.randint(0, vocabulary, (n, length), generator=generator)
        used = torch.randint(1, length + 1, (n,), generator=generator)
        mask = (torch.arange(length)[None, :] < used[:, None]).to(torch.int64)
        return torch.where(mask.bool(), ids, torch.full_like(ids, pad)), mask

    inputs = [GraphInput("input_ids", "int64", ["batch", "sequence"]),
              GraphInput("attention_mask", "int64", ["batch", "sequence"])]
    return TaskGraph(TextGraph(net, task).eval(), inputs, example, task)


def trace(graph: TaskGraph) -> torch.jit.ScriptModule:
    """The graph traced on two rows, refused unless it reproduces the eager network on three others."""
    with torch.no_grad(), warnings.catch_warnings(), for_task(graph.task):
        warnings.simplefilter("ignore")  # TracerWarnings: what they warn of is checked below, on other rows
        try:
            traced = torch.jit.trace(graph.module, graph.example(2), check_trace=False)
            probe = graph.example(3)
            expected, got = graph.module(*probe)[0], traced(*probe)[0]
        except Exception as error:  # tracing fails in many ways (unsupported ops, data-dependent Python)
            raise ExportRefused(f"its forward cannot be traced: {type(error).__name__}: {error}") from error
    difference = float((expected - got).abs().max()) if expected.numel() else 0.0
    if got.shape != expected.shape or not difference <= TRACE_TOLERANCE:
        raise ExportRefused(f"the traced graph does not reproduce the network on other inputs (max abs"
                            f" difference {difference:.3g}): its forward depends on its inputs' values or batch size")
    return traced


def to_torchscript(graph: TaskGraph, metadata: dict[str, str]) -> bytes:
    """A TorchScript file (torch.jit.load) with `metadata` as the extra file lifelong.json."""
    with _EXPORTING:
        traced = trace(graph)
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated upstream; it still works
            torch.jit.save(traced, buffer, _extra_files={"lifelong.json": json.dumps(metadata, sort_keys=True)})
    return buffer.getvalue()


def to_onnx(graph: TaskGraph, metadata: dict[str, str]) -> bytes:
    """An ONNX file (opset 17, dynamic batch axis) with `metadata` in its metadata_props."""
    try:
        import onnx
    except ImportError as error:
        raise NotInstalled("ONNX export needs the package onnx: install lifelong with the `export` extra") from error
    with _EXPORTING:
        trace(graph)
        buffer = io.BytesIO()
        with torch.no_grad(), warnings.catch_warnings(), for_task(graph.task):
            warnings.simplefilter("ignore")  # the TorchScript-based exporter's deprecation and folding notes
            try:
                torch.onnx.export(graph.module, graph.example(2), buffer, input_names=[i.name for i in graph.inputs],
                                  output_names=list(OUTPUTS), dynamic_axes=graph.dynamic_axes,
                                  opset_version=ONNX_OPSET, dynamo=False)
            except Exception as error:  # an operator without an ONNX form, for one
                raise ExportRefused(f"torch.onnx cannot export it: {type(error).__name__}: {error}") from error
    model = onnx.load_from_string(buffer.getvalue())
    onnx.helper.set_model_props(model, metadata)
    return model.SerializeToString()
