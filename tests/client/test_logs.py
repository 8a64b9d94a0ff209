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


def test_lines_written_in_the_background_are_those_written_in_place(monkeypatch) -> None:  # noqa: ANN001
    """The API's writer thread: same lines, in order, with the message as it was at the call, the job id of
    the calling context and the traceback in its own field."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        monkeypatch.setenv("LIFELONG_LOG_JSON", "1")
        stream = StringIO()
        writer = configure_logging(stream=stream, in_background=True)
        assert writer is not None
        rows = [1, 2]
        token = CURRENT_JOB.set("job9")
        logging.getLogger("lifelong.test").info("rows %s", rows)
        CURRENT_JOB.reset(token)
        rows.append(3)  # after the call: the line keeps what the call saw
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("lifelong.test").exception("failed")
        for i in range(50):
            logging.getLogger("lifelong.test").info("line %d", i)
        writer.stop()  # writes what is queued, then ends the thread
        lines = [json.loads(text) for text in stream.getvalue().splitlines()]
        assert lines[0]["message"] == "rows [1, 2]" and lines[0]["job_id"] == "job9"
        assert lines[1]["message"] == "failed" and "ValueError: boom" in lines[1]["exception"]
        assert "job_id" not in lines[1]
        assert [line["message"] for line in lines[2:]] == [f"line {i}" for i in range(50)]
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
