"""Issue 13: key checks kept for LIFELONG_AUTH_CACHE_S seconds. A key revoked by another process (the CLI)
counts within that lifetime, one revoked through this process at once; refusals are never kept; the cache
is bounded, and a read that began before a clear is not kept after it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker
from starlette.datastructures import State

from app.auth.deps import Caller, identify
from app.auth.keys import create_key, revoke_key
from app.db.engine import make_engine, make_session_factory
from app.db.migrate import upgrade_database
from app.settings import Settings
from app.timed_cache import TimedCache, clear_on_commit


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_cache_is_bounded_and_keeps_no_read_older_than_a_clear() -> None:
    cache = TimedCache(60.0, max_entries=2)
    for key in "abc":
        cache.put(key, key.upper(), read_in=cache.generation)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (None, None, "C")  # full: started afresh
    read_in = cache.generation
    cache.clear()  # a write committed while the read was running: what it read may be older
    cache.put("d", "D", read_in=read_in)
    assert cache.get("d") is None
    off = TimedCache(0.0)
    off.put("e", "E", read_in=off.generation)
    assert off.get("e") is None


def test_a_key_check_is_kept_for_its_lifetime_and_forgotten_at_this_processs_revoke(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path / "var")
    upgrade_database(settings)
    other = make_session_factory(make_engine(settings))  # another process: the CLI
    own = make_session_factory(make_engine(settings))  # this API process's writes
    reader_engine = make_engine(settings, reader=True)
    reads: list[str] = []
    event.listen(reader_engine, "before_cursor_execute",
                 lambda *args: args[2].startswith("SELECT") and reads.append(args[2]))
    clock = ManualClock()  # time moves only when the test says: nothing depends on the machine's speed
    state = State({"reader_engine": reader_engine, "key_cache": TimedCache(1.0, clock=clock)})
    clear_on_commit(own, state.key_cache)

    def check(token: str) -> Caller | None:
        return asyncio.run(identify(state, f"Bearer {token}"))

    def make(sessions: sessionmaker[Session]) -> tuple[int, str]:
        with sessions() as session:
            made = create_key(session=session, scope="read")
            session.commit()
            return made.key.id, made.token

    def revoke(sessions: sessionmaker[Session], key_id: int) -> None:
        with sessions() as session:
            revoke_key(session=session, key_id=key_id)
            session.commit()

    key_id, token = make(other)
    assert check(token) == Caller("read", key_id)
    assert check(token) == Caller("read", key_id) and len(reads) == 1  # the second answer was kept
    assert check(token[:-2] + "xx") is None and check(token[:-2] + "xx") is None
    assert len(reads) == 1 + 2 * 2  # a refusal is never kept: each reads the key, then whether any exists

    revoke(other, key_id)
    clock.now += 0.99
    assert check(token) is not None  # kept: another process's revoke counts within the lifetime ...
    clock.now += 0.02
    assert check(token) is None  # ... and once it is over

    state.key_cache = TimedCache(60.0, clock=clock)
    clear_on_commit(own, state.key_cache)
    key_id, token = make(other)
    assert check(token) is not None
    revoke(own, key_id)
    assert check(token) is None  # this process's commit cleared the cache at once
