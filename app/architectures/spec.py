"""The architecture spec, typed: what `validate_architecture` returns and every network builder reads.

A model's architecture is a JSON object named by its `kind`; validation (each kind's
`Architecture.validate`) fills in the defaults and returns one of the forms below. The rest of the
service (the registry, the jobs, predictions, export) receives that validated form.

These are `TypedDict`s, not dataclasses or pydantic models, on purpose: a TypedDict is a plain `dict`
at run time. The spec is stored as is in the models table's JSON column, sent back in API responses,
dumped with `json.dumps(sort_keys=True)` as the key of the network cache and of the trunk-size cache,
and taken by request bodies as `dict[str, Any]` (validation turns that into the spec); all of that
keeps working unchanged, and the types cost nothing at run time. A dataclass would need converting at
every one of those edges, and would change what the API and the database hold.

Keys are required where validation always fills them in, `NotRequired` otherwise. `trainable` is
always filled in by validation, but mlp and cnn models stored before the option existed have rows
without it, which is why `frozen_names` reads it with `.get("trainable", "all")`.

A plugin's spec (`PluginSpec`) has its own option names besides `kind` and `trainable`; a TypedDict
cannot say "and any other keys" before Python 3.13 (PEP 728), so those keys are read by a plugin with
its own TypedDict (`cast(MySpec, spec)`), or as the dict it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NotRequired, TypeAlias, TypedDict, cast


class LastBlocks(TypedDict):
    """`trainable: {"last": N}`: only the last N blocks of the trunk learn (0 ≤ N ≤ its blocks)."""

    last: int


Trainable: TypeAlias = Literal["all", "none"] | LastBlocks
"""Which trunk parameters learn, as validation normalises it (app.architectures.base.normalise_trainable)."""


class MLPSpec(TypedDict):
    """`mlp`: ReLU layers of widths `hidden` over `input_shape` [d] numbers per row."""

    kind: Literal["mlp"]
    input_shape: list[int]
    hidden: list[int]
    trainable: NotRequired[Trainable]  # filled in by validation; absent from rows stored before the option


class CNNSpec(TypedDict):
    """`cnn`: 3×3 convolutions of `channels`, then ReLU layers of widths `hidden`, over [c, h, w] inputs."""

    kind: Literal["cnn"]
    input_shape: list[int]
    channels: list[int]
    hidden: list[int]
    trainable: NotRequired[Trainable]  # filled in by validation; absent from rows stored before the option


class TextEncoderSpec(TypedDict):
    """`text-encoder`: a BERT-style encoder from `path` (None: the bundled all-MiniLM-L6-v2), mean-pooled."""

    kind: Literal["text-encoder"]
    path: str | None
    max_length: int
    normalize: bool
    trainable: Trainable


class ImageBackboneSpec(TypedDict):
    """`image-backbone`: EfficientNet-Lite0 over square [3, image_size, image_size] images."""

    kind: Literal["image-backbone"]
    image_size: int
    trainable: Trainable


class PluginSpec(TypedDict):
    """A plugin kind's spec: its `kind`, `trainable`, and the plugin's own options (not typed here)."""

    kind: str
    trainable: Trainable


ArraySpec: TypeAlias = MLPSpec | CNNSpec
ArchitectureSpec: TypeAlias = MLPSpec | CNNSpec | TextEncoderSpec | ImageBackboneSpec | PluginSpec
"""A validated architecture: one built-in kind's form, or a plugin's."""


def stored_spec(value: Mapping[str, Any]) -> ArchitectureSpec:
    """A spec read back from where a validated one was put (the models table's JSON column): trusted as
    such, not validated again (the same dict, typed)."""
    return cast(ArchitectureSpec, value)
