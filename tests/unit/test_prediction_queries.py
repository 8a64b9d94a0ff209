"""Issue 13: the prediction path reads model and version once, and nothing while the network runs.

It used to roll its session back and then read `theta_blob` and the model's name again (lazy reloads
of expired rows): two more SELECTs, and a read transaction open through the forward pass."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import event

from app.predictions import service
from app.predictions.batching import Coalescer, _Key
from app.predictions.cache import NetworkCache
from app.timed_cache import TimedCache
from tests.unit.tiny_model import tiny_service


def test_a_prediction_reads_once_and_holds_no_transaction_through_the_forward_pass(tmp_path: Path,
                                                                                   monkeypatch) -> None:
    tiny = tiny_service(tmp_path)
    engine, sessions, store, x = tiny.engine, tiny.sessions, tiny.store, tiny.x

    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    during_forward: list[int] = []
    forward = service.forward
    monkeypatch.setattr(service, "forward", lambda **k: during_forward.append(len(statements)) or forward(**k))
    cache = NetworkCache(1 << 30)
    for _ in range(2):  # a cold and a warm network cache
        statements.clear()
        with sessions() as session:
            answer = service.predict(session=session, store=store, cache=cache, targets=TimedCache(0), model_name="m",
                                     task="t", version=None, inputs=x[:2], probabilities=False)
            after = len(statements)
            assert answer.model == "m" and answer.version == 1 and len(answer.predictions) == 2
        selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
        assert len(selects) <= 3, selects  # the model, production's version; nothing read twice
        assert during_forward[-1] == after  # no statement after the rows were read: none during the forward pass


def test_a_prediction_runs_in_memory_only_when_nothing_is_read_and_its_network_is_quick(tmp_path: Path,
                                                                                       monkeypatch) -> None:
    """The event-loop path of a small JSON prediction: the same answer as `predict`, no statement at all,
    and None (the thread pool) for a network never run yet or too slow at its last pace."""
    tiny = tiny_service(tmp_path)
    engine, sessions, store, x = tiny.engine, tiny.sessions, tiny.store, tiny.x
    cache, targets = NetworkCache(1 << 30), TimedCache(60.0)
    asked = {"model_name": "m", "task": "t", "version": None, "inputs": x[:2], "probabilities": True}
    assert service.predict_in_memory(cache=cache, targets=targets, **asked) is None  # nothing in memory yet

    with sessions() as session:
        answer = service.predict(session=session, store=store, cache=cache, targets=targets, **asked)
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    monkeypatch.setattr(service, "QUICK_S", 60.0)  # whatever pace this (loaded) machine ran it at
    assert service.predict_in_memory(cache=cache, targets=targets, **asked) == answer and statements == []
    monkeypatch.setattr(service, "QUICK_S", 0.0)
    assert service.predict_in_memory(cache=cache, targets=targets, **asked) is None


def test_the_event_loop_path_never_waits_on_a_shared_pass(tmp_path: Path, monkeypatch) -> None:
    """A quick prediction runs on the event loop: it must not queue behind a pass that a thread-pool request
    for the same network is running (the loop would stop for as long as that pass takes)."""
    tiny = tiny_service(tmp_path)
    cache, targets = NetworkCache(1 << 30, passes=Coalescer(wait_s=0.0, max_rows=64)), TimedCache(60.0)
    asked = {"model_name": "m", "task": "t", "version": None, "inputs": tiny.x[:2], "probabilities": False}
    with tiny.sessions() as session:
        alone = service.predict(session=session, store=tiny.store, cache=cache, targets=targets, **asked)
    key = (targets.get(("m", None, None)).network_key, "t")
    with cache.passes._lock:  # as if a thread-pool request's pass for this key were running now
        cache.passes._keys[key] = _Key(running=True)
    monkeypatch.setattr(service, "QUICK_S", 60.0)
    done = threading.Event()
    answers: list = []
    thread = threading.Thread(target=lambda: (answers.append(service.predict_in_memory(cache=cache, targets=targets,
                                                                                      **asked)), done.set()),
                              daemon=True)
    thread.start()
    assert done.wait(timeout=30), "the event-loop path waited on another request's pass"
    assert answers == [alone]
