"""The one shape of every error the API answers, and the OpenAPI's account of which errors each operation sends.

Every refusal is `{"detail": "<a sentence for people>"}`, whatever sends it (a service error, FastAPI, a
middleware). A request that fails validation (422) adds `"errors"`: one `{"loc", "msg", "type"}` per
field, `loc` the path to it (`["body", "train", "dataset"]`, `["query", "limit"]`). FastAPI's default
puts that list in `detail` itself, so a client had to expect a string or a list; here `detail` is always
a string, and the list has a name of its own.

`answer_errors` gives every kind of error its status and this body. `document_errors` makes the OpenAPI
say so: each operation lists the statuses it can answer (from the route: its scope, path parameters and
body; plus the service's own refusals in `SERVICE_ERRORS`), each with this body, instead of FastAPI's
lone 422 with a `detail` list.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException
from starlette.types import Send

from app.errors import ServiceError
from app.request_schema import standard_bounds
from app.store import BlobNotFound


class FieldError(BaseModel):
    loc: list[str | int] = Field(description='where the field is: ["body", "train", "dataset"], ["query", "limit"]')
    msg: str
    type: str = Field(description="pydantic's error type, e.g. missing, int_parsing, json_invalid")


class ErrorOut(BaseModel):
    """The body of every 4xx and 5xx answer."""

    detail: str = Field(description="what was refused and why, for people")
    errors: list[FieldError] | SkipJsonSchema[None] = Field(
        None, description="with a 422 for a request that fails validation: one entry per field")


# Fields listed in one answer: 10,000 bad labels are not sent back as 10,000 errors.
MAX_FIELD_ERRORS = 20


def validation_error_body(errors: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """`{"detail", "errors"}` of a request that fails validation. The offending `input` is left out: a NaN
    in it cannot be encoded as JSON, and a large body would be sent back whole."""
    fields = [{"loc": [p if isinstance(p, int) else str(p) for p in e["loc"]], "msg": _message(e),
               "type": str(e["type"])} for e in errors[:MAX_FIELD_ERRORS]]
    detail = "; ".join(f"{'.'.join(str(p) for p in f['loc']) or 'request'}: {f['msg']}" for f in fields)
    if len(errors) > MAX_FIELD_ERRORS:
        detail += f"; and {len(errors) - MAX_FIELD_ERRORS} more"
    return {"detail": detail or "the request is invalid", "errors": fields}


def _message(error: Mapping[str, Any]) -> str:
    reason = (error.get("ctx") or {}).get("error")  # FastAPI's "JSON decode error" keeps its reason here
    if error["type"] == "json_invalid" and isinstance(reason, str):
        return f"{error['msg']}: {reason}"
    return str(error["msg"])


async def send_error(send: Send, status: int, detail: str, headers: Sequence[tuple[bytes, bytes]] = (),
                     *, close: bool = True) -> None:
    """An error answered from ASGI middleware, before any route: the same body, and the connection closed
    (`close`) where the request's body is left unread."""
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *([(b"connection", b"close")] if close else []), *headers]})
    await send({"type": "http.response.body", "body": body})


REASONS = {
    400: "The body could not be read (not UTF-8, a malformed multipart body).",
    401: "No valid API key: send `Authorization: Bearer <key>` (only once a key exists).",
    403: "The key's scope is too small for this operation (or, for a key scoped to models: the operation is"
         " about every model, or creates a model outside its scope).",
    404: "A model, version, task, dataset, job or key named in the request does not exist.",
    408: "The body stopped arriving (`LIFELONG_BODY_READ_TIMEOUT_S` without data).",
    409: "Conflicts with the stored state; the detail says with what.",
    413: "Over a limit (body bytes, rows, unpacked bytes); the detail names the setting.",
    415: "The body's Content-Type is not one this operation reads; the detail names those it reads.",
    422: "Invalid: a request that fails validation lists the fields in `errors`; data that does not fit"
         " the model (shape, labels, kind) is said in `detail`.",
    429: "The model has `LIFELONG_MAX_ACTIVE_JOBS_PER_MODEL` queued or running jobs.",
    503: "Storage or the job broker is unavailable, or (predictions) too many run at once: retry after Retry-After.",
    504: "The prediction passed its deadline (LIFELONG_PREDICT_TIMEOUT_S).",
}

# Refusals of the services (app/errors.py subclasses, app/limits.py) that the route's shape does not
# tell: the operations that raise them. `document_errors` refuses a key that names no operation.
SERVICE_ERRORS: dict[tuple[str, str], set[int]] = {
    ("POST", "/v1/models"): {409, 503},  # a taken name; the initial θ is written to the blob store
    ("DELETE", "/v1/models/{name}"): {409},  # queued or running jobs
    ("POST", "/v1/datasets"): {503},
    ("DELETE", "/v1/datasets/{dataset_id}"): {409},  # a queued or running job needs the data
    ("GET", "/v1/jobs"): {404},  # ?model= names no model
    ("POST", "/v1/jobs/{job_id}/cancel"): {409},  # already finished
    ("POST", "/v1/models/{name}/tasks"): {409, 429, 503},  # the task exists; active jobs; the broker
    ("POST", "/v1/models/{name}/importance"): {429, 503},
    ("DELETE", "/v1/keys/{key_id}"): {409},  # the caller's own key, or already revoked
    ("DELETE", "/v1/models/{name}/aliases/{alias}"): {409},  # production
    ("GET", "/v1/models/{name}/versions/{number}/export"): {503},  # a server without the `export` extra
    # Without a task: a version with no task, or without class statistics for every task.
    # Shed past LIFELONG_PREDICT_WORKERS + _QUEUE (503); past LIFELONG_PREDICT_TIMEOUT_S (504).
    ("POST", "/v1/models/{name}/predict"): {409, 503, 504},
    ("GET", "/v1/models/{name}/predict"): {409, 503, 504},
    ("POST", "/v1/models/{name}/webhooks"): {409},  # LIFELONG_MAX_WEBHOOKS_PER_MODEL hooks already
    ("POST", "/v1/models/{name}/evaluate"): {409},
    ("POST", "/v1/models/{name}/drift"): {409, 429, 503},  # a task without reference; active jobs; the broker
}
# Answers 503 with its own body (which part is not ready), not an error body.
NOT_READY = {("GET", "/readyz")}


def error_statuses(route: APIRoute, method: str) -> set[int]:
    """The statuses `route` can answer with an error body."""
    statuses = set(SERVICE_ERRORS.get((method, route.path), ()))
    if route.path.startswith("/v1/"):
        statuses.add(401)
    # A scope dependency (app/auth/deps.py) marks whether it can refuse a key: a read key passes every
    # ReadScope, so no 403 there (a key scoped to models may not pass require_every_model).
    if any(getattr(d.dependency, "answers_403", False) for d in route.dependencies):
        statuses.add(403)
    if route.param_convertors:
        statuses.add(404)
    if route.dependant.query_params or route.dependant.path_params or route.body_field is not None:
        statuses.add(422)
    if route.body_field is not None or request_media_types(route):
        statuses |= {408, 413, 415, 422}
    if route.body_field is not None:
        statuses.add(400)  # FastAPI's answer for a body it cannot decode
    return statuses


def request_media_types(route: APIRoute) -> tuple[str, ...]:
    """The media types of body `route` reads: its declared request body's, else its body field's."""
    declared = (route.openapi_extra or {}).get("requestBody", {}).get("content")
    if declared:
        return tuple(declared)
    if route.body_field is not None:
        return (route.body_field.field_info.media_type,)
    return ()


def operations(routers: Iterable[APIRouter]) -> Iterable[tuple[str, APIRoute]]:
    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute) and route.include_in_schema:
                for method in sorted(route.methods):
                    yield method, route


def allowed_methods(routers: Sequence[APIRouter]) -> Callable[[str], str | None]:
    """The `Allow` header of a 405 for a path: every method of every operation on it. (Starlette's names only
    the methods of the first route whose path matched, so GET /v1/models's when POST was sent.)"""
    table = [(route.path_regex, method) for method, route in operations(routers)]

    def allowed(path: str) -> str | None:
        return ", ".join(sorted({method for regex, method in table if regex.match(path)})) or None

    return allowed


def answer_errors(app: FastAPI, routers: Sequence[APIRouter]) -> None:
    """Answer each kind of error the app can meet with its status and the one body."""
    allowed = allowed_methods(routers)

    @app.exception_handler(ServiceError)
    async def _service_error(_: Request, error: ServiceError) -> JSONResponse:
        return JSONResponse({"detail": error.detail}, status_code=error.status_code,
                            headers=getattr(error, "headers", None))

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, error: HTTPException) -> Response:
        if error.status_code == 405 and (methods := allowed(request.url.path)):
            error.headers = {**(error.headers or {}), "Allow": methods}
        return await http_exception_handler(request, error)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse(validation_error_body(error.errors()), status_code=422)

    @app.exception_handler(IntegrityError)
    async def _integrity_error(_: Request, error: IntegrityError) -> JSONResponse:
        # Two writers racing for one name: the loser is told so, never a 500.
        return JSONResponse({"detail": f"conflicts with stored data: {error.orig}"}, status_code=409)

    @app.exception_handler(OSError)
    async def _storage_error(_: Request, error: OSError) -> JSONResponse:
        # A full disk or a read-only blob directory is the server's trouble, not the client's: 503, not 500.
        return JSONResponse({"detail": f"storage unavailable: {error.strerror or error}"}, status_code=503)

    @app.exception_handler(BlobNotFound)
    async def _missing_blob(_: Request, error: BlobNotFound) -> JSONResponse:
        # A row names a blob the store lacks (deleted by hand, or another blob_dir): the server's
        # data is damaged, which a client cannot fix; said plainly rather than as a bare 500.
        return JSONResponse({"detail": f"stored data is missing: {error}"}, status_code=500)


def document_errors(app: FastAPI, routers: Sequence[APIRouter]) -> None:
    """Make `app.openapi()` declare, on each operation, the error statuses it sends with `ErrorOut`."""
    declared = {(method, route.path): error_statuses(route, method) for method, route in operations(routers)}
    stale = (SERVICE_ERRORS.keys() | NOT_READY) - declared.keys()
    if stale:
        raise RuntimeError(f"SERVICE_ERRORS names operations that do not exist: {sorted(stale)}")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)
            _declare(schema, declared)
            standard_bounds(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _declare(schema: dict[str, Any], declared: Mapping[tuple[str, str], set[int]]) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    error_schema = ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}")
    error_schema["properties"]["errors"].pop("default")  # absent, never null
    components.update(error_schema.pop("$defs", {}), ErrorOut=error_schema)
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}
    for path, items in schema["paths"].items():
        for method, operation in items.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)  # FastAPI's, with a `detail` list
            for status in sorted(declared.get((method.upper(), path), ())):
                responses[str(status)] = {"description": REASONS[status], "content": error}
            if (method.upper(), path) in NOT_READY:
                ready = responses["200"]
                responses["503"] = {"description": "The database or the broker does not answer: the body says"
                                    " which (as for 200).", "content": ready.get("content", {})}
            if "401" in responses:
                responses["401"]["headers"] = {"WWW-Authenticate": {"schema": {"type": "string", "const": "Bearer"}}}
