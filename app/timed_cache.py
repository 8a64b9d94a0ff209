"""A small in-process cache whose entries live a fixed, short time: key checks and prediction targets.

Reading a key, or the version a prediction names, from the database (with the thread-pool hop it takes)
cost a 1-row prediction more than its forward pass. Kept for `lifetime_s` seconds (LIFELONG_AUTH_CACHE_S;
0 keeps nothing), an answer is at most that stale: a write this process commits clears the cache at
once (`clear_on_commit`), a change made by another process (the CLI revoking a key, a worker promoting
a version) counts within the lifetime. Callers keep only successes, never refusals, so a key or a
version created elsewhere works at once.

Entries are read on the event loop and written from the thread pool. A read running while the cache is
cleared may have seen the data from before the write: `put` drops what was read before the last clear,
so a write this process made is never hidden behind an older read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker


class TimedCache:
    def __init__(self, lifetime_s: float, max_entries: int = 1024, clock: Callable[[], float] = time.monotonic):
        self.lifetime_s = lifetime_s
        self.max_entries = max_entries
        self.clock = clock  # seconds; tests pass their own, so that no check depends on the machine's speed
        self.generation = 0  # the clears so far: what `put` compares with when its read began
        self._entries: dict[Hashable, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any | None:
        """The value kept for `key`, or None when none is, or its lifetime is over."""
        entry = self._entries.get(key)
        return entry[1] if entry is not None and self.clock() < entry[0] else None

    def put(self, key: Hashable, value: Any, *, read_in: int) -> None:
        """Keep `value`, read from the database when `generation` was `read_in`: unless a clear came since."""
        if self.lifetime_s <= 0:
            return
        with self._lock:
            if read_in != self.generation:
                return
            if len(self._entries) >= self.max_entries:  # bounded: starting afresh costs one read per key
                self._entries.clear()
            self._entries[key] = (self.clock() + self.lifetime_s, value)

    def clear(self) -> None:
        with self._lock:
            self.generation += 1
            self._entries.clear()


def clear_on_commit(sessions: sessionmaker[Session], *caches: TimedCache) -> None:
    """Clear `caches` after each commit of a session from `sessions`: a key revoked, an alias moved or a
    version added through this process counts at its next request, whichever code path wrote it."""

    def clear(_session: Session) -> None:
        for cache in caches:
            cache.clear()

    event.listen(sessions, "after_commit", clear)
