"""The HTTP pieces of versions that more than one router uses: the version number in a path, and the
OpenAPI's account of a safetensors download.

Versions' routes and the downloads of app/export (the checkpoint, ONNX, TorchScript) take them from here,
so neither router imports the other.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from app.db.tables import MAX_VERSION

SAFETENSORS = "application/octet-stream"
# The downloads' 200 in the OpenAPI: a binary safetensors file, not JSON.
SAFETENSORS_FILE = {200: {"description": "a safetensors file",
                          "content": {SAFETENSORS: {"schema": {"type": "string", "format": "binary"}}}}}
VersionNumber = Annotated[int, Path(ge=0, le=MAX_VERSION)]
