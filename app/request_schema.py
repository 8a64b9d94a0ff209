"""Request bodies accept exactly what their JSON Schema in the OpenAPI says, and the schema says exactly that.

Request models are strict (`ConfigDict(strict=True)`): pydantic's lax mode takes `true` for 1, `"1"` for 1
and `1` for true, all of which JSON Schema calls invalid, so a client reading the OpenAPI could not tell
what the server does with them. Strict mode also refuses `2.0` for an integer, which JSON Schema calls an
integer (a number without a fraction): `Integer` takes it, as 2.

A model validator's rules (exactly one of `dataset`, `inputs`, `texts`; not both `version` and `alias`; a
field that may be left out but not sent as null) are invisible to pydantic's schema; `exactly_one_of`,
`at_most_one_of` and `not_null` write them into it, called from the model's `json_schema_extra`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import BeforeValidator


def _integral(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


Integer = Annotated[int, BeforeValidator(_integral)]


def given(field: dict[str, Any]) -> dict[str, Any]:
    """The schema of an optional field when it is given: without its null alternative and default."""
    schema = {k: v for k, v in field.items() if k not in ("anyOf", "default")}
    kinds = [kind for kind in field.get("anyOf", []) if kind != {"type": "null"}]
    if "anyOf" in field:
        schema.update(kinds[0] if len(kinds) == 1 else {"anyOf": kinds})
    return schema


def exactly_one_of(schema: dict[str, Any], sources: Mapping[str, str], *,
                   absent_with: Mapping[str, Sequence[str]] | None = None) -> None:
    """Rewrite, in place, the schema of a model whose fields `sources` are alternatives (exactly one given,
    and not null) as a oneOf of one object per source, titled as `sources` says. In each branch the
    other sources, and the fields `absent_with[source]` names, may only be null or left out; inline data
    (an array) may not be empty."""
    properties, required = schema.pop("properties"), schema.pop("required", [])
    branches = []
    for source, title in sources.items():
        absent = {*sources, *(absent_with or {}).get(source, ())} - {source}
        chosen = given(properties[source])
        if chosen.get("type") == "array":
            chosen["minItems"] = 1
        branch = {name: {"type": "null"} if name in absent else value for name, value in properties.items()}
        branches.append({"title": title, "type": "object", "properties": {**branch, source: chosen},
                         "required": [*required, source], "additionalProperties": False})
    for key in ("type", "additionalProperties"):
        schema.pop(key, None)
    schema["oneOf"] = branches


def at_most_one_of(schema: dict[str, Any], fields: Sequence[str]) -> None:
    """Add to the schema (to each branch of its oneOf) that `fields` are not all given (not null) at once."""
    for target in schema.get("oneOf", [schema]):
        both = {"required": list(fields), "properties": {name: given(target["properties"][name]) for name in fields}}
        target.setdefault("allOf", []).append({"not": both})


def not_null(schema: dict[str, Any], fields: Sequence[str]) -> None:
    """Say, in place, that `fields` may be left out but not sent as null (their model refuses null)."""
    for name in fields:
        schema["properties"][name] = given(schema["properties"][name])


def refuse_null(value: Any) -> Any:
    """A field validator for the fields `not_null` names: pydantic runs it on values sent, not on defaults."""
    if value is None:
        raise ValueError("may be left out, but not null")
    return value


_BOUNDS = {"ge": "minimum", "le": "maximum", "gt": "exclusiveMinimum", "lt": "exclusiveMaximum"}


def standard_bounds(schema: Any) -> None:
    """Rename, in place, the bounds pydantic leaves under its own names (`ge`, `le`, …) to JSON Schema's.

    A bound on an optional `Integer` (`Integer | None = Field(None, ge=0)`) cannot go into the union's
    branches, so pydantic writes it beside them as `ge`, which JSON Schema does not know: a client (or
    schemathesis) reading the OpenAPI would send -1 and get a 422. Renamed, the schema says what the
    server checks."""
    if isinstance(schema, dict):
        for name, standard in _BOUNDS.items():
            if name in schema and isinstance(schema[name], int | float) and "type" in schema:
                schema[standard] = schema.pop(name)
        for value in schema.values():
            standard_bounds(value)
    elif isinstance(schema, list):
        for value in schema:
            standard_bounds(value)

