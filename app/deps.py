"""FastAPI dependencies as `Annotated` aliases; the objects themselves live on `app.state`.

`create_app` builds them once per process (engine, blob store, prediction cache, Celery client), so
routes receive what they need without globals and tests can build an app over any directory.

They are `async` although they do no I/O: FastAPI runs a plain `def` dependency in its thread pool,
and each such hop (two for a generator: enter and exit) cost a 1-row prediction more than its whole
forward pass. Opening a session reads nothing; closing one only returns its connection to the pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from celery import Celery
from fastapi import Depends, Request
from sqlalchemy.orm import Session

from app.predictions.cache import NetworkCache
from app.settings import Settings
from app.store import BlobStore
from app.timed_cache import TimedCache


async def get_session(request: Request) -> AsyncIterator[Session]:
    with request.app.state.sessions() as session:
        yield session


async def get_read_session(request: Request) -> AsyncIterator[Session]:
    """A session for requests that only read: it never queues behind a worker's write."""
    with request.app.state.read_sessions() as session:
        yield session


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_store(request: Request) -> BlobStore:
    return request.app.state.store


async def get_cache(request: Request) -> NetworkCache:
    return request.app.state.cache


async def get_target_cache(request: Request) -> TimedCache:
    return request.app.state.target_cache


async def get_celery(request: Request) -> Celery:
    return request.app.state.celery


SessionDep = Annotated[Session, Depends(get_session)]
ReadSessionDep = Annotated[Session, Depends(get_read_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[BlobStore, Depends(get_store)]
CacheDep = Annotated[NetworkCache, Depends(get_cache)]
TargetCacheDep = Annotated[TimedCache, Depends(get_target_cache)]
CeleryDep = Annotated[Celery, Depends(get_celery)]
