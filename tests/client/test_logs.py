"""Logs of the real service: JSON lines off a terminal, and the job id on the worker's lines of a job."""

from __future__ import annotations

import json
import logging
from io import StringIO

from app.logging_setup import CURRENT_JOB, configure_logging
from tests.client.conftest import Trained
from tests.conftest import Service, wait_for


def json_lines(path) -> list[dict]:  # noqa: ANN001
    lines = []
    for text in path.read_text(errors="replace").splitlines():
        if text.startswith("{"):
            try:
                lines.append(json.loads(text))
            except ValueError:
                continue
    return lines


def test_worker_lines_of_a_job_carry_its_id(service: Service, trained: Trained, lifelong) -> None:  # noqa: ANN001
    job = lifelong.list_jobs(model=trained.model, state="succeeded")[0]
    worker_log = service.var_dir.parent / f"{service.var_dir.name}-worker.log"

    def job_lines() -> list[dict]:
        return [line for line in json_lines(worker_log) if line.get("job_id") == job.id]

    lines = wait_for(job_lines, deadline_s=10, what=f"worker log lines of job {job.id}")
    assert any("succeeded" in line["message"] for line in lines)
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    api_log = service.var_dir.parent / f"{service.var_dir.name}-api.log"
    assert any(line["logger"] == "uvicorn.access" for line in json_lines(api_log))
    for log in (worker_log, api_log):  # nothing but JSON: no banner, no bare warnings
        stray = [text for text in log.read_text(errors="replace").splitlines() if text.strip()
                 and not text.startswith("{")]
        assert not stray, stray[:5]


def test_plain_text_on_a_terminal_and_json_elsewhere(monkeypatch) -> None:  # noqa: ANN001
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        monkeypatch.setenv("LIFELONG_LOG_JSON", "1")
        stream = StringIO()
        configure_logging(stream=stream)
        token = CURRENT_JOB.set("abc123")
        logging.getLogger("lifelong.test").info("step %d", 3)
        CURRENT_JOB.reset(token)
        line = json.loads(stream.getvalue())
        assert line["message"] == "step 3" and line["job_id"] == "abc123" and line["level"] == "info"

        monkeypatch.setenv("LIFELONG_LOG_JSON", "0")
        stream = StringIO()
        configure_logging(stream=stream)
        logging.getLogger("lifelong.test").info("plain")
        assert stream.getvalue().rstrip().endswith("lifelong.test: plain")
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
