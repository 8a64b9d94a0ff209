"""The service's limits, each a setting: request body bytes, inline rows, input values, job size, active jobs.

Each check refuses with the limit's name and value, so a client knows what to change. The body
limit is an ASGI middleware that counts bytes as they arrive: an upload over the limit is refused
from its Content-Length before a byte is read, or, when streamed without one, as soon as the count
passes the limit, never after the whole body was spooled to disk.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.db.lookups import lock_model
from app.db.tables import Model
from app.errors import Invalid, ServiceError, TooLarge
from app.jobs.service import active_job_count
from app.settings import Settings

# Multipart framing around an uploaded file: boundaries, part headers, a file name.
MULTIPART_SLACK_BYTES = 64 << 10


class TooManyRequests(ServiceError):
    status_code = 429


class BodyLimit:
    """413 for a request body over `max_bytes`, decided while it streams in."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        detail = f"the request body is larger than the limit of {self.max_bytes} bytes (LIFELONG_MAX_UPLOAD_BYTES)"
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _send_413(send, detail)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, detail)
            return message

        await self.app(scope, counted, send)


async def _send_413(send: Send, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def check_inline_rows(inputs: list | None, max_rows: int, purpose: str) -> None:
    if inputs is not None and len(inputs) > max_rows:
        raise TooLarge(f"{purpose}: {len(inputs)} inline rows, more than the limit of {max_rows}"
                       " (LIFELONG_MAX_INLINE_ROWS); upload them as a dataset")


def check_input_values(input_shape: list[int], max_values: int) -> None:
    values = math.prod(input_shape)
    if values > max_values:
        raise Invalid(f"architecture: input_shape {list(input_shape)} has {values} values per row, more than the"
                      f" limit of {max_values} (LIFELONG_MAX_INPUT_VALUES)")


def check_model_parameters(count: int, max_parameters: int) -> None:
    if count > max_parameters:
        raise Invalid(f"architecture: the trunk would have {count:,} parameters, more than the limit of"
                      f" {max_parameters:,} (LIFELONG_MAX_MODEL_PARAMETERS)")


def check_class_count(num_classes: int, max_classes: int, what: str) -> None:
    """422 for a task of more classes than LIFELONG_MAX_CLASSES (`what` says where the count came from):
    integer labels name classes 0..label, so a label of 10¹² would ask the worker for 10¹² head rows."""
    if num_classes > max_classes:
        raise Invalid(f"{what}: a task of {num_classes:,} classes, more than the limit of {max_classes:,}"
                      f" (LIFELONG_MAX_CLASSES); integer labels must lie in 0..{max_classes - 1:,}")


def head_parameters(feature_dim: int, num_classes: int) -> int:
    """A task's head: a linear layer from the trunk's features to its classes, weights and biases."""
    return num_classes * (feature_dim + 1)


def check_network_parameters(*, trunk: int, feature_dim: int, heads: list[int], num_classes: int,
                             max_parameters: int) -> None:
    """422 when the network a train job would make (the trunk, the heads it has, and the new task's head)
    passes LIFELONG_MAX_MODEL_PARAMETERS; counted from shapes, before anything is queued or allocated."""
    earlier = sum(head_parameters(feature_dim, classes) for classes in heads)
    new = head_parameters(feature_dim, num_classes)
    total = trunk + earlier + new
    if total > max_parameters:
        raise Invalid(f"the network would have {total:,} parameters, more than the limit of {max_parameters:,}"
                      f" (LIFELONG_MAX_MODEL_PARAMETERS): the trunk's {trunk:,}, {earlier:,} in the heads of"
                      f" {len(heads)} earlier tasks, and {new:,} in this task's head ({num_classes:,} classes ×"
                      f" ({feature_dim:,} features + 1))")


def check_job_samples(epochs: int, rows: int, max_samples: int) -> None:
    if epochs * rows > max_samples:
        raise Invalid(f"{epochs} epochs × {rows} rows = {epochs * rows} training samples, more than the limit of"
                      f" {max_samples} per job (LIFELONG_MAX_JOB_SAMPLES)")


def check_active_jobs(session: Session, model: Model, max_active: int) -> None:
    """429 when the model already has `max_active` queued or running jobs.

    The model row is locked first (FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE already
    serialises writers), so two requests racing cannot both take the last slot.
    """
    lock_model(session, model.id)
    active = active_job_count(session=session, model_id=model.id)
    if active >= max_active:
        raise TooManyRequests(f"model {model.name!r} has {active} queued or running jobs, the limit"
                              f" (LIFELONG_MAX_ACTIVE_JOBS_PER_MODEL); wait for one to finish")


# An archive expanding more than this many times its packed size is refused as a decompression
# bomb once it expands past RATIO_FLOOR_BYTES: PNG and JPEG, which is what a raw dataset archives,
# are compressed already and pack about 1:1, so 100:1 is never a real image dataset. Not applied
# to .npz, where savez_compressed of sparse arrays can honestly reach such ratios.
MAX_COMPRESSION_RATIO = 100
RATIO_FLOOR_BYTES = 16 << 20


@dataclass(frozen=True)
class UnpackLimits:
    """How far an uploaded file may expand while it is read, and how big one item of it may be."""

    max_unpacked_bytes: int = 1 << 30
    max_image_pixels: int = 40_000_000
    max_text_chars: int = 10_000
    max_compression_ratio: float = MAX_COMPRESSION_RATIO
    ratio_floor_bytes: int = RATIO_FLOOR_BYTES

    @classmethod
    def of(cls, settings: Settings) -> UnpackLimits:
        return cls(max_unpacked_bytes=settings.max_unpacked_bytes, max_image_pixels=settings.max_image_pixels,
                   max_text_chars=settings.max_text_chars)

    def check_unpacked(self, unpacked: int, packed: int, what: str) -> None:
        """413 when `unpacked` bytes (so far) of `packed` ones pass the total or the ratio limit."""
        if unpacked > self.max_unpacked_bytes:
            raise TooLarge(f"{what} expands to more than {self.max_unpacked_bytes} bytes, the limit"
                           " (LIFELONG_MAX_UNPACKED_BYTES)")
        if unpacked > self.ratio_floor_bytes and unpacked > self.max_compression_ratio * max(packed, 1):
            raise TooLarge(f"{what} expands to {unpacked} bytes from {packed}, a compression ratio over"
                           f" {self.max_compression_ratio:g}:1: refused as a decompression bomb")
