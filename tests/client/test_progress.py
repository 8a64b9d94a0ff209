"""A running job's bar, which the client (`job.wait(progress=True)`) and the CLI (`follow`) share: what it
computes from the job's row (epoch, elapsed, ETA), and that the CLI draws exactly the client's bar for the
same polls, on a terminal and off one. No server: the job's rows are replayed."""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import lifelong_client.progress as progress_module
import pytest
from lifelong_client import Job
from lifelong_client.progress import Epochs, ProgressBar, status_of

from app.commands.follow import follow


def _job(**data: object) -> Job:
    return Job(None, {"id": "j", "kind": "train", "model": "m", "state": "running", **data})  # type: ignore[arg-type]


def test_progress_epoch_elapsed_and_eta_come_from_the_jobs_row() -> None:
    started = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    now = started + timedelta(seconds=30)
    ten = Epochs(10, rows=100, batch_size=10)  # 10 epochs of 10 steps
    running = _job(started_at="2026-01-01T12:00:00Z", progress={"done": 25, "total": 100, "unit": "steps",
                                                                 "loss": 0.5})
    # Step 25 is in epoch 3; 30 s for 25 steps leaves 90 s for 75.
    assert status_of(running, epochs=ten, now=now) == "epoch 3/10, loss 0.5000, 0:00:30 elapsed, ETA 0:01:30"
    assert status_of(running, now=now) == "loss 0.5000, 0:00:30 elapsed, ETA 0:01:30"  # epochs unknown: no epoch
    assert Epochs(7, rows=100, batch_size=10).of(running) is None  # 100 steps are not 7 epochs
    # Rows held back for validation make an epoch shorter, still an epoch; 100 steps for 10 epochs of at
    # most 5 steps are several runs (one per λ tried): no epoch rather than a wrong one.
    assert Epochs(10, rows=105, batch_size=10).of(running) == 3
    assert Epochs(10, rows=50, batch_size=10).of(running) is None
    assert Epochs(10).of(running) == 3  # the number of epochs alone (the client's ProgressBar(epochs=10))
    searching = _job(started_at="2026-01-01T12:00:00Z", progress={
        "done": 70, "total": 120, "unit": "steps", "loss": 0.5, "epoch": 2, "epochs": 4, "trial": 3, "trials": 4})
    assert status_of(searching, now=now).startswith("λ trial 3/4, epoch 2/4, loss 0.5000")  # as the job reports it
    refreshing = _job(started_at="2026-01-01T12:00:00Z", progress={  # a job without them sends nulls
        "done": 5, "total": 10, "unit": "samples", "loss": None, "epoch": None, "epochs": None, "trial": None,
        "trials": None})
    assert status_of(refreshing, now=now).startswith("0:00:30 elapsed")
    queued = _job(state="queued", started_at=None, progress={"done": 0, "total": 100, "unit": "steps", "loss": None})
    assert status_of(queued, epochs=ten, now=now) == "epoch 1/10"
    done = _job(state="succeeded", started_at="2026-01-01T12:00:00+00:00", finished_at="2026-01-01T12:01:05Z",
                progress={"done": 100, "total": 100, "unit": "steps", "loss": None})
    assert status_of(done, epochs=ten, now=now + timedelta(hours=1)) == "epoch 10/10, 0:01:05 elapsed"
    refresh = _job(kind="importance", started_at="2026-01-01T12:00:00Z",
                   progress={"done": 512, "total": 2048, "unit": "samples", "loss": None})
    assert status_of(refresh, epochs=ten, now=now) == "0:00:30 elapsed, ETA 0:01:30"


# --- the CLI's bar is the client's -------------------------------------------------------------------

STARTED = "2026-01-01T12:00:00Z"
NOW = datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC)
EPOCHS = Epochs(10, rows=100, batch_size=10)  # what `tasks add` passes for `--epochs 10`
ROWS: list[dict[str, Any]] = [  # one train job's row at successive polls
    {"state": "queued", "started_at": None, "progress": None},
    {"state": "running", "started_at": STARTED, "progress": {"done": 0, "total": 100, "unit": "steps", "loss": None}},
    {"state": "running", "started_at": STARTED, "progress": {"done": 25, "total": 100, "unit": "steps", "loss": 0.5}},
    {"state": "running", "started_at": STARTED, "progress": {  # a λ search: the job says its trial and epoch
        "done": 70, "total": 120, "unit": "steps", "loss": 0.25, "epoch": 2, "epochs": 4, "trial": 2, "trials": 3}},
    {"state": "succeeded", "started_at": STARTED, "finished_at": "2026-01-01T12:01:05Z", "result": {"version": 1},
     "progress": {"done": 120, "total": 120, "unit": "steps", "loss": 0.2, "epoch": 4, "epochs": 4, "trial": 3,
                  "trials": 3}},
]


class Replay:
    """A client whose job reads return ROWS in turn, and which knows the version the job made."""

    base_url = "http://replay"

    def __init__(self) -> None:
        self._rows: Iterator[dict[str, Any]] = iter(ROWS[1:])

    def _json(self, method: str, path: str) -> dict[str, Any]:
        return _row(next(self._rows))

    def get_version(self, model: str, version: int) -> dict[str, Any]:
        return {"version": version, "task": "t", "tasks": ["t"], "accuracy": {"t": 0.9}}


def _row(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": "j", "kind": "train", "model": "m", "task": "t", **fields}


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Frozen(datetime):
    """`datetime.now` at NOW, so that a running job's elapsed time and ETA do not depend on when the test runs."""

    @classmethod
    def now(cls, tz: Any = None) -> Frozen:  # type: ignore[override]
        return NOW  # type: ignore[return-value]


def _uncoloured(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _stderr(monkeypatch: pytest.MonkeyPatch, terminal: bool, draw: Any) -> str:
    """What `draw` writes on stderr, where stderr is a terminal or not."""
    stream = Terminal() if terminal else io.StringIO()
    with monkeypatch.context() as patch:
        patch.setattr(sys, "stderr", stream)
        draw()
    return stream.getvalue()


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "lines"])
def test_the_cli_draws_the_clients_bar(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                       terminal: bool) -> None:
    monkeypatch.setattr(progress_module, "datetime", Frozen)
    monkeypatch.setattr(progress_module, "LINE_EVERY_S", 0.0)  # off a terminal, a line per poll: all of them compared
    for name, value in {"TERM": "xterm-256color", "COLUMNS": "100"}.items():
        monkeypatch.setenv(name, value)
    for name in ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(name, raising=False)

    def cli() -> None:
        replay = Replay()
        follow(replay, Job(replay, _row(ROWS[0])), as_json=False, timeout=None, epochs=EPOCHS)  # type: ignore[arg-type]

    def client(bar: ProgressBar) -> None:
        replay = Replay()
        with bar:
            Job(replay, _row(ROWS[0])).wait(progress=bar)  # type: ignore[arg-type]

    from_cli = _stderr(monkeypatch, terminal, cli)
    from_client = _stderr(monkeypatch, terminal, lambda: client(ProgressBar(epochs=EPOCHS, label=False)))
    # The same bytes, but for colours: the pulse of a bar without a total (the queued job) is coloured by the clock.
    assert _uncoloured(from_cli) == _uncoloured(from_client)
    assert "job j succeeded: m version 1" in capsys.readouterr().out  # the CLI's own report, after the bar

    # The bar says what the rows allow: the epoch estimated from the steps, then as the job reports it.
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\r", "", from_cli)
    for said in ("25/100 steps", "epoch 3/10, loss 0.5000, 0:00:30 elapsed, ETA 0:01:30",
                 "70/120 steps", "λ trial 2/3, epoch 2/4, loss 0.2500", "epoch 4/4", "0:01:05 elapsed"):
        assert said in text, (said, text)
    if terminal:
        assert "\x1b[" in from_cli and "━" in text  # a live bar, not lines
        return
    assert from_cli.splitlines() == [
        "job j queued", "job j running 0/100 steps, epoch 1/10, 0:00:30 elapsed",
        "job j running 25/100 steps, epoch 3/10, loss 0.5000, 0:00:30 elapsed, ETA 0:01:30",
        "job j running 70/120 steps, λ trial 2/3, epoch 2/4, loss 0.2500, 0:00:30 elapsed, ETA 0:00:21",
        "job j succeeded 120/120 steps, λ trial 3/3, epoch 4/4, loss 0.2000, 0:01:05 elapsed"]
    # `job.wait(progress=True)` draws the same lines, naming the job's kind and task (the CLI says which
    # job on a line of its own above the bar).
    assert _stderr(monkeypatch, terminal, lambda: client(ProgressBar(epochs=EPOCHS))) == from_cli.replace(
        "job j ", "job j (train t) ")


def test_the_lines_come_at_state_changes_and_every_line_every_s(monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    clock = iter([0.0, 1.0, 2.0, 11.5, 12.0, 13.0])
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: next(clock))
    bar = ProgressBar(label=False)
    for state, done in [("queued", 0), ("running", 1), ("running", 2), ("running", 3), ("running", 4),
                        ("succeeded", 5)]:
        bar(_job(state=state, progress={"done": done, "total": 5, "unit": "samples", "loss": None}))
    assert [line.split(" samples")[0] for line in capsys.readouterr().err.splitlines()] == [
        "job j queued 0/5", "job j running 1/5", "job j running 3/5", "job j succeeded 5/5"]
