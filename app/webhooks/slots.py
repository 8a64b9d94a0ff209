"""The delivery loop's slots: how many sends are in flight, in all and per target.

A target is where a hook's URL points (scheme, host, port): two hooks of one receiver share its slots, so
a receiver that never answers holds at most `per_target` of the loop's `total` sends, and every other
target keeps the rest. The loop takes a slot before it claims a delivery and gives it back when the send
is recorded; giving one back wakes the loop, so the next delivery starts without waiting for a poll.
"""

from __future__ import annotations

import threading
from collections import Counter
from urllib.parse import urlsplit


def target_of(url: str) -> str:
    """The receiver a URL reaches: scheme://host:port, the port made explicit."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


class Slots:
    """Sends in flight, at most `total` in all and `per_target` to one target."""

    def __init__(self, total: int, per_target: int):
        self.total, self.per_target = total, per_target
        self._busy: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._freed = threading.Event()

    def free(self) -> int:
        with self._lock:
            return self.total - sum(self._busy.values())

    def take(self, target: str) -> bool:
        """A slot for a send to `target`, if both it and the loop have one free."""
        with self._lock:
            if sum(self._busy.values()) >= self.total or self._busy[target] >= self.per_target:
                return False
            self._busy[target] += 1
            return True

    def give(self, target: str) -> None:
        with self._lock:
            self._busy[target] -= 1
            if self._busy[target] <= 0:
                del self._busy[target]
        self._freed.set()

    def wait_freed(self, timeout_s: float) -> None:
        """Until a slot is given back, or `timeout_s` passes."""
        self._freed.wait(timeout_s)
        self._freed.clear()
