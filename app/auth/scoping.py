"""Keys scoped to models: which models a key reaches, and the one place that decides it per request.

A key may carry a model scope, a list of names and/or a name prefix (`team-a-`); without either it
reaches every model, as every key made before scopes existed does. The scope is enforced in three
places, each written once here or in `deps`:

- every route under `/v1/models/{name}` (versions, tasks, importance, predictions, evaluate, export,
  aliases, webhooks, drift, shadow, ...): the AuthenticateFirst middleware compares the path's name with
  the key's scope before any route runs, so the busiest route (predictions, which avoids FastAPI
  dependencies) pays a string comparison and new routes under a model are covered without a word;
- the routes that list or name models elsewhere (`GET/POST /v1/models`, `/v1/jobs`): `ModelScopeDep`;
- what is about every model (keys, `/metrics`, the list of datasets): `EveryModel`, a 403 for a scoped key.

A model outside the scope is answered exactly as a model that does not exist (404 `no model 'x'`), so a
scoped key cannot learn which names other teams use; creating one is a 403 (the name is the caller's own).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

MODELS_PATH = "/v1/models/"


@dataclass(frozen=True)
class ModelScope:
    names: frozenset[str] | None = None
    prefix: str | None = None

    @classmethod
    def of(cls, names: Iterable[str] | None, prefix: str | None) -> ModelScope:
        return cls(frozenset(names) if names is not None else None, prefix or None)

    @property
    def every_model(self) -> bool:
        return self.names is None and self.prefix is None

    def reaches(self, name: str) -> bool:
        if self.every_model:
            return True
        return (self.names is not None and name in self.names) or (
            self.prefix is not None and name.startswith(self.prefix))

    def describe(self) -> str:
        if self.every_model:
            return "every model"
        parts = [f"models {', '.join(sorted(self.names))}"] if self.names else []
        parts += [f"names starting with {self.prefix!r}"] if self.prefix else []
        return " and ".join(parts)


EVERY_MODEL = ModelScope()


def model_in_path(path: str) -> str | None:
    """The `{name}` of a `/v1/models/{name}…` path (what the routes would match it as), or None."""
    if not path.startswith(MODELS_PATH):
        return None
    name = path[len(MODELS_PATH):].split("/", 1)[0]
    return name or None


def not_found(name: str) -> str:
    """The detail of a model that is out of scope: the very words of one that does not exist
    (app/db/lookups.py)."""
    return f"no model {name!r}"
