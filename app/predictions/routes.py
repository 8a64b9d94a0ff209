"""HTTP routes of predictions: POST with a JSON body or a raw .npy body, and GET for a quick look."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from app.auth.deps import READ_SCOPE_OPENAPI, ReadScope
from app.db.tables import MAX_VERSION
from app.errors import Invalid, TooLarge
from app.names import NAME_PATTERN
from app.predictions import service
from app.predictions.schemas import PredictOut, PredictQuery, PredictRequest, query_parameters
from app.settings import Settings

router = APIRouter(prefix="/v1/models/{name}/predict", tags=["predictions"])

NPY = "application/x-npy"
MULTIPART = "multipart/form-data"
IMAGES = ("image/png", "image/jpeg")
QUICK_JSON_BYTES = 16 << 10  # a JSON body this small is parsed on the event loop (a few rows)

AliasQuery = Annotated[str | None, Query(pattern=NAME_PATTERN, description="a version by alias, not with version "
                                                                       "(default: production)")]

_BODIES = {
    "requestBody": {
        "content": {
            "application/json": {"schema": PredictRequest.model_json_schema()},
            NPY: {"schema": {"type": "string", "format": "binary"}},
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            MULTIPART: {"schema": {"type": "object", "properties": {
                "files": {"type": "array", "items": {"type": "string", "format": "binary"}}}}},
        },
        "required": True,
    }
}


_PATH_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string", "title": "Name"}}


# POST is declared first: routes are matched in order, and it is the busiest.
@router.post("", response_model=PredictOut, response_model_exclude_none=True,
             openapi_extra={**_BODIES, **READ_SCOPE_OPENAPI,
                            "parameters": [_PATH_NAME, *query_parameters(PredictQuery)]})
async def predict_from_body(request: Request) -> Response:
    # The path and query are read here, and what app/deps.py would inject is taken from app.state: each
    # parameter and dependency FastAPI solves cost the event loop more than a 1-row forward pass (the four
    # query parameters, unused with a JSON body, about 30 µs), on the busiest route.
    name: str = request.path_params["name"]
    query = _query(request)
    state = request.app.state
    settings: Settings = state.settings
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == MULTIPART:
        files = await _read_files(request, settings.max_upload_bytes, settings.max_predict_images)
        body = b""
    else:
        body = await _read_body(request, settings.max_upload_bytes)

    asked: Asked | None = None
    if content_type not in (NPY, MULTIPART, *IMAGES) and len(body) <= QUICK_JSON_BYTES:
        # A small JSON body is parsed here, on the event loop, and predicted here when nothing needs
        # reading and the network is fast (service.predict_in_memory): the thread-pool hop would cost a
        # 1-row prediction more than the prediction itself.
        asked = _from_json(body, settings)
        answer = service.predict_in_memory(cache=state.cache, targets=state.target_cache, model_name=name,
                                           shadows=state.shadows, **asked.arguments())
        if answer is not None:
            return _json(answer)

    def parse_and_predict() -> Response:
        if content_type in (NPY, MULTIPART, *IMAGES):
            inputs = (service.inputs_from_npy(body=body, max_rows=settings.max_predict_rows) if content_type == NPY
                      else files if content_type == MULTIPART else [body])
            question = Asked(query.task, query.version, query.alias, inputs, query.probabilities)
        else:
            question = asked or _from_json(body, settings)
        with state.read_sessions() as session:
            return _json(service.predict(session=session, store=state.store, cache=state.cache,
                                         targets=state.target_cache, model_name=name, shadows=state.shadows,
                                         **question.arguments()))

    # Parsing, the forward pass and the JSON are CPU work: off the event loop, in the predictions' own
    # thread pool, under a deadline, stopped if the client goes, refused when too many wait (admission.py).
    return await state.gate.run(request, parse_and_predict)


@router.get("", response_model=PredictOut, response_model_exclude_none=True, dependencies=[ReadScope])
async def predict_from_query(
    request: Request,
    name: str,
    inputs: Annotated[str, Query(description="JSON list of rows, at most 100")],
    task: Annotated[str | None, Query(pattern=NAME_PATTERN,
                                      description="the task whose head answers (absent: task-free)")] = None,
    version: Annotated[int | None, Query(ge=0, le=MAX_VERSION)] = None,
    alias: AliasQuery = None,
    probabilities: bool = False,
) -> Response:
    state = request.app.state

    def parse_and_predict() -> Response:
        with state.read_sessions() as session:
            return _json(service.predict(session=session, store=state.store, cache=state.cache,
                                         targets=state.target_cache, model_name=name, task=task, version=version,
                                         alias=alias,
                                         inputs=service.inputs_from_query(inputs), probabilities=probabilities,
                                         shadows=state.shadows))

    return await state.gate.run(request, parse_and_predict)


@dataclass(frozen=True)
class Asked:
    """What a POST asks for: from its JSON body, or from the query with the other bodies."""

    task: str | None
    version: int | None
    alias: str | None
    inputs: service.RawInputs
    probabilities: bool

    def arguments(self) -> dict[str, Any]:
        return {"task": self.task, "version": self.version, "alias": self.alias, "inputs": self.inputs,
                "probabilities": self.probabilities}


_NO_QUERY = PredictQuery()


def _query(request: Request) -> PredictQuery:
    """The query, validated as FastAPI validates its own parameters (a 422 naming each field)."""
    if not request.scope["query_string"]:
        return _NO_QUERY
    try:
        return PredictQuery.model_validate(dict(request.query_params))
    except ValidationError as error:
        raise _request_error(error, "query") from error


def _from_json(body: bytes, settings: Settings) -> Asked:
    try:
        parsed = PredictRequest.model_validate_json(body)
    except ValidationError as error:
        raise _request_error(error, "body") from error
    inputs = (service.inputs_from_json(inputs=parsed.inputs, max_rows=settings.max_predict_rows) if parsed.texts is None
              else service.inputs_from_texts(texts=parsed.texts, max_texts=settings.max_predict_texts))
    return Asked(parsed.task, parsed.version, parsed.alias, inputs, parsed.probabilities)


def _request_error(error: ValidationError, where: str) -> RequestValidationError:
    """A validation error answered as FastAPI answers its own: with the fields, under "query" or "body"."""
    return RequestValidationError([{**e, "loc": (where, *e["loc"])} for e in error.errors()])


def _json(answer: PredictOut) -> Response:
    # The bytes FastAPI would send for response_model=PredictOut, without validating `answer` again.
    return Response(answer.model_dump_json(exclude_none=True).encode(), media_type="application/json")


async def _read_body(request: Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the request body is larger than the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_files(request: Request, limit: int, max_files: int) -> list[bytes]:
    """The image files of a multipart body (field `files`), at most `limit` bytes in all."""
    try:
        form = await request.form(max_files=max_files, max_fields=16, max_part_size=limit)
    except Exception as error:  # starlette raises its own errors for malformed or oversized forms
        if "too many files" in str(error).lower():
            raise TooLarge(f"more than LIFELONG_MAX_PREDICT_IMAGES = {max_files} images in one request: send them "
                           "in several requests, or upload the rows as a dataset and score it with evaluate") from error
        raise Invalid(f"the multipart body could not be read: {error}") from error
    files, size = [], 0
    for item in form.getlist("files"):
        if isinstance(item, str):
            raise Invalid("the multipart field 'files' must hold files, not text")
        data = await item.read()
        size += len(data)
        if size > limit:
            raise TooLarge(f"the files are larger than the limit of {limit} bytes in all")
        files.append(data)
    if not files:
        raise Invalid("a multipart prediction needs one or more image files in the field 'files'")
    return files
