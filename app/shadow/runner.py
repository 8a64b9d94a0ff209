"""Replaying production's predictions on the shadow version, off the request path.

The request thread only draws a number and, for a sampled request, puts its preprocessed inputs and
production's answer on a bounded queue (`offer`): it never waits. When the queue is full the rows are
dropped and counted. One thread per API process takes the queue, answers each item with the shadow's
version exactly as a prediction would (same task, or task-free), compares class by class, and adds the
counts to the shadow's row (app/shadow/service.py) about once a second. It also re-reads which models
have a shadow every `refresh_s`, so the request path reads only a dict.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import torch
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.architectures.spec import ArchitectureSpec, stored_spec
from app.db.tables import Model, Shadow, Version
from app.models.networks import version_network
from app.predictions.cache import NetworkCache
from app.predictions.schemas import PredictOut
from app.predictions.service import answer_version
from app.shadow.service import Counts, add_counts
from app.store import BlobStore

log = logging.getLogger(__name__)
MAX_BATCH_REQUESTS = 256  # sampled requests replayed in one pass at most
COALESCE_S = 0.05  # how long the replay thread lets sampled requests gather before a pass


@dataclass(frozen=True)
class Shadowed:
    """A model's shadow as the request path needs it."""

    model_id: int
    version: int
    fraction: float


@dataclass(frozen=True)
class Replay:
    model: str
    shadow: Shadowed
    task: str | None
    x: torch.Tensor
    production: list[str]  # production's class per row (name, or task/index)
    tasks: list[str]  # the task of production's answer per row


class ShadowRunner:
    def __init__(self, sessions: sessionmaker[Session], store: BlobStore, cache: NetworkCache, *,
                 queue_size: int = 1000, refresh_s: float = 1.0, flush_s: float = 1.0):
        self.sessions, self.store, self.cache = sessions, store, cache
        self.refresh_s, self.flush_s = refresh_s, flush_s
        self._queue: queue.Queue[Replay] = queue.Queue(maxsize=max(1, queue_size))
        self._shadows: dict[str, Shadowed] = {}
        self._versions: dict[tuple[int, int], tuple[Version, ArchitectureSpec, dict[str, Any] | None]] = {}
        self._pending: dict[tuple[int, int], Counts] = defaultdict(Counts)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def offer(self, answer: PredictOut, x: torch.Tensor, *, asked_version: int | None, asked_alias: str | None) -> None:
        """Called by the request thread after production answered; returns at once."""
        shadow = self._shadows.get(answer.model)
        if shadow is None or asked_version is not None or asked_alias not in (None, "production"):
            return
        if random.random() >= shadow.fraction:  # noqa: S311 - sampling, not security
            return
        replay = Replay(answer.model, shadow, answer.task, x, production_labels(answer),
                        answer.tasks or [answer.task or ""] * len(answer.predictions))
        try:
            self._queue.put_nowait(replay)
        except queue.Full:
            with self._lock:
                self._pending[(shadow.model_id, shadow.version)].dropped += len(replay.production)

    def start(self) -> None:
        self.refresh()
        self._thread = threading.Thread(target=self._run, name="lifelong-shadow", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._flush()

    def _run(self) -> None:
        refreshed = flushed = time.monotonic()
        while not self._stop.is_set():
            for group in self._next_groups():
                try:
                    self._replay(group)
                except Exception:  # a shadow must never take the API down: log and go on
                    log.exception("shadow replay for model %s failed", group[0].model)
            now = time.monotonic()
            if now - flushed >= self.flush_s:
                self._flush()
                flushed = now
            if now - refreshed >= self.refresh_s:
                self.refresh()
                refreshed = now

    def _next_groups(self) -> list[list[Replay]]:
        """What waits in the queue (after waiting a moment for the first), grouped so that each group is one
        forward pass: the same shadow, task and input shape. Replaying a burst in one pass keeps the thread's
        share of the interpreter small, which is what production's requests would otherwise wait on."""
        try:
            items = [self._queue.get(timeout=0.05)]
        except queue.Empty:
            return []
        time.sleep(COALESCE_S)  # let a burst gather: nobody waits on a replay, production waits on each pass
        while len(items) < MAX_BATCH_REQUESTS:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        groups: dict[tuple[Any, ...], list[Replay]] = defaultdict(list)
        for item in items:
            groups[(item.model, item.shadow, item.task, tuple(item.x.shape[1:]), item.x.dtype)].append(item)
        return list(groups.values())

    def _replay(self, group: list[Replay]) -> None:
        first = group[0]
        found = self._version(first.shadow)
        if found is None:
            return
        version, architecture, options = found
        net = self.cache.get((json.dumps(architecture, sort_keys=True), version.theta_blob),
                             lambda: version_network(self.store, architecture, version))
        x = torch.cat([item.x for item in group]) if len(group) > 1 else first.x
        replayed = answer_version(store=self.store, net=net, model=first.model, version=version, options=options,
                                  task=first.task, x=x)
        if replayed is None:  # the shadow's version cannot answer this (it lacks the task)
            return
        with self._lock:
            self._pending[(first.shadow.model_id, first.shadow.version)].add_rows(
                [label for item in group for label in item.production], production_labels(replayed),
                [task for item in group for task in item.tasks])

    def _version(self, shadow: Shadowed) -> tuple[Version, ArchitectureSpec, dict[str, Any] | None] | None:
        """The shadow's version row (detached), its model's architecture and task-free options; kept until the
        next refresh (a version never changes; the options may)."""
        key = (shadow.model_id, shadow.version)
        found = self._versions.get(key)
        if found is None:
            with self.sessions() as session:
                version = session.scalar(select(Version).where(Version.model_id == shadow.model_id,
                                                               Version.number == shadow.version))
                model = session.get(Model, shadow.model_id)
                if version is None or model is None:
                    return None
                session.expunge(version)
                found = (version, stored_spec(model.architecture), model.task_free)
            self._versions[key] = found  # a refresh may empty the dict meanwhile: `found` stays ours
        return found

    def _flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, defaultdict(Counts)
        if not pending:
            return
        with self.sessions.begin() as session:
            for (model_id, version), counts in pending.items():
                add_counts(session=session, model_id=model_id, version=version, counts=counts)

    def refresh(self) -> None:
        """Read which models have a shadow now (the request path reads only what this found)."""
        with self.sessions() as session:
            rows = session.execute(select(Model.name, Shadow.model_id, Shadow.version, Shadow.fraction)
                                   .join(Model, Model.id == Shadow.model_id)).all()
        self._shadows = {name: Shadowed(model_id, version, fraction) for name, model_id, version, fraction in rows}
        self._versions = {}

def production_labels(answer: PredictOut) -> list[str]:
    """Each row's class as a comparable name: the label, or task/index for a task learned from numbers."""
    if answer.labels is not None:
        return list(answer.labels)
    return [f"{answer.task}/{index}" for index in answer.predictions]
