"""kombu's filesystem transport with messages written atomically: the embedded broker.

kombu writes a message straight under its final `<time>_<uuid>.<queue>.msg` name, and a consumer
polling the folder can take the file between its creation and its write: it reads nothing, raises
JSONDecodeError, which stops the worker, and the message is gone with the file it moved away. Seen
in CI under load. Here a message is written to a temporary name (which the consumer's filter never
matches), fsynced, and renamed into place, so a `.msg` file is always whole; nothing else of the
transport changes. A message that cannot be decoded all the same (a file damaged by hand) is logged
and skipped rather than allowed to stop the worker; its job stays queued in the database, and the
embedded worker sends every queued job again when it starts.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any

from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.json import dumps

from app.store import write_atomically

log = logging.getLogger(__name__)

ALIAS = "lifelong-files"


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        # The same name scheme as kombu's (time first, so the folder sorts oldest first).
        name = f"{round(time.monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        write_atomically(Path(self.data_folder_out) / name, dumps(payload).encode(), publish=self._publish)

    def _publish(self, temporary: str, final: str) -> None:
        """The one step that makes a message visible: a rename within the folder, atomic."""
        os.rename(temporary, final)

    def _get(self, queue: str) -> Any:
        while True:  # Empty, raised by the parent when no message is left, ends the loop
            try:
                return super()._get(queue)
            except ValueError as damaged:
                log.error("a message on queue %s could not be decoded and was skipped: %s", queue, damaged)


class Transport(filesystem.Transport):
    Channel = Channel


TRANSPORT_ALIASES.setdefault(ALIAS, f"{__name__}:Transport")
