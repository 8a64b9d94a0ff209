"""415 for a request body of a media type its operation does not read, answered before a byte of it is read.

FastAPI reads a JSON operation's body only when it is declared `application/json` (or `…+json`), and
otherwise validates the raw bytes, which answers 422 "Input should be a valid dictionary": true, but
no help to a client that sent JSON as `text/plain` or a form. Here each operation's media types come
from its own declaration (its JSON body or multipart form, or the `requestBody` of a route that reads
its body itself, as predictions do), and a body of any other type, or with no Content-Type, is answered 415 with the
types it takes. A request without a body passes: the route says whether it needed one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fastapi import APIRouter
from starlette.types import ASGIApp, Receive, Scope, Send

from app.http_errors import operations, request_media_types, send_error

JSON = "application/json"


@dataclass(frozen=True)
class BodyOperation:
    method: str
    path: re.Pattern[str]
    media_types: tuple[str, ...]

    def reads(self, media_type: str) -> bool:
        if JSON in self.media_types and (media_type == JSON or re.fullmatch(r"application/[^/]+\+json", media_type)):
            return True
        return media_type in self.media_types


def body_operations(routers: Iterable[APIRouter]) -> list[BodyOperation]:
    return [BodyOperation(method, route.path_regex, types)
            for method, route in operations(routers) if (types := request_media_types(route))]


class RequireMediaType:
    def __init__(self, app: ASGIApp, body_operations: Sequence[BodyOperation]):
        self.app, self.operations = app, body_operations

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        has_body = headers.get(b"content-length", b"0") != b"0" or b"transfer-encoding" in headers
        operation = has_body and next((o for o in self.operations
                                       if o.method == scope["method"] and o.path.match(scope["path"])), None)
        if operation:
            given = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
            if not operation.reads(given):
                await send_error(send, 415, _refusal(operation.media_types, given))
                return
        await self.app(scope, receive, send)


def _refusal(media_types: Sequence[str], given: str) -> str:
    takes = media_types[0] if len(media_types) == 1 else f"{', '.join(media_types[:-1])} or {media_types[-1]}"
    sent = f"Content-Type {given}" if given else "no Content-Type"
    advice = f": send it with Content-Type: {takes}" if len(media_types) == 1 else ""
    return f"this operation reads a body of type {takes}, and this one came with {sent}{advice}"
