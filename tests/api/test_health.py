"""Liveness and readiness of a running service."""

from __future__ import annotations


def test_healthz_answers(api) -> None:
    assert api.get("/healthz") == {"status": "ok"}


def test_readyz_checks_database_and_broker(api) -> None:
    assert api.get("/readyz") == {"status": "ready", "database": "ok", "broker": "ok"}
