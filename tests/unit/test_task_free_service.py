"""The service side of task-free answers: what a train job keeps, measures again or marks as stale
(app/task_free/measure.py), the promotion rule on task-free accuracy, and migration 0011 on a database
made before it (tests/fixtures/legacy_0006): old versions answer only with a task, and the next train job
measures every task whose training data is still stored."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from alembic import command
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.aliases.promotion import TASK_FREE, PromotionPolicy, decide
from app.db.engine import make_engine, make_session_factory
from app.db.migrate import alembic_config
from app.db.tables import Model, Version
from app.errors import Conflict
from app.mas import class_statistics
from app.mas.networks import build_network, network_state
from app.predictions.task_free import check_answerable
from app.settings import Settings
from app.store import LocalBlobStore
from app.task_free.measure import TaskSource, measure_and_fit, trunk_moved
from app.task_free.options import TaskFreeOptions
from app.task_free.stored import load_head, load_statistics
from tests.unit.test_migration_0008 import FIXTURE, _learn

OPTIONS = TaskFreeOptions(projection=32)


def _blobs(x: torch.Tensor, offset: float, n: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    """Two well separated classes around ±offset in the first input."""
    generator = torch.Generator().manual_seed(int(offset * 10))
    y = torch.arange(n) % 2
    rows = torch.randn(n, x.shape[1], generator=generator) * 0.3
    rows[:, 0] += torch.where(y == 0, -offset, offset)
    rows[:, 1] += offset
    return rows, y


def _sources(net, rows: dict[str, tuple[torch.Tensor, torch.Tensor]], *, missing: frozenset[str] = frozenset(),
             held_back: bool = True) -> list[TaskSource]:
    return [TaskSource(task, 2, None if task in missing else (lambda r=r: r), (lambda r=r: r) if held_back else None,
                       lambda r=r: r) for task, r in rows.items()]


@pytest.fixture
def setting(tmp_path: Path):
    net = build_network({"kind": "mlp", "input_shape": [6], "hidden": [16]}, 0)
    for task in ("a", "b"):
        net.add_head(task, 2, seed=1)
    probe = torch.zeros(1, 6)
    rows = {"a": _blobs(probe, 2.0), "b": _blobs(probe, 5.0)}
    return net, rows, LocalBlobStore(tmp_path / "blobs")


def test_a_new_task_is_measured_and_an_unmoved_trunk_keeps_every_blob(setting) -> None:
    net, rows, store = setting
    first = measure_and_fit(store, net, _sources(net, {"a": rows["a"]}), kept=None, trunk_moved=False,
                            new_task="a", options=OPTIONS, seed=0)
    assert [(e["task"], e["n"], e["at_trunk"], e["remeasured"]) for e in first.class_statistics] == [
        ("a", 40, True, False)]
    second = measure_and_fit(store, net, _sources(net, rows), kept=first.class_statistics, trunk_moved=False,
                             new_task="b", options=OPTIONS, seed=0)
    assert second.class_statistics[0] == first.class_statistics[0]  # the same blob: nothing measured again
    measured = load_statistics(store, second.class_statistics[1]["blob"])
    reference = class_statistics.measure(net, *rows["b"], 2, class_statistics.Projection.draw(16, 32, 0))
    for name in ("counts", "sums", "gram", "projected_sums", "projected_gram"):  # stored in float32
        assert torch.allclose(getattr(measured, name), getattr(reference, name), rtol=1e-6, atol=1e-5), name
    fitted = second.task_free
    assert fitted["held_back_from"] == "validation" and fitted["held_back_rows"] == 80 and fitted["eval_rows"] == 80
    assert fitted["held_back"]["ridge"]["accuracy"] > 0.9 and set(fitted["eval"]) == set(fitted["held_back"])
    head = load_head(store, fitted, OPTIONS.unknown_rate)
    assert head.catalog.tasks == ("a", "b") and head.projection.width == 32


def test_a_moved_trunk_measures_again_where_rows_are_stored_and_marks_the_rest_stale(setting) -> None:
    net, rows, store = setting
    before = measure_and_fit(store, net, _sources(net, rows), kept=None, trunk_moved=False, new_task="b",
                             options=OPTIONS, seed=0)
    start = network_state(net)
    with torch.no_grad():
        net.trunk[0].weight.add_(0.5)
    assert trunk_moved(start, net.state_dict()) and not trunk_moved(start, start)
    net.add_head("c", 2, seed=2)
    rows["c"] = _blobs(torch.zeros(1, 6), 8.0)
    after = measure_and_fit(store, net, _sources(net, rows, missing=frozenset({"a"})), kept=before.class_statistics,
                            trunk_moved=True, new_task="c", options=OPTIONS, seed=0)
    a, b, c = after.class_statistics
    assert a == {**before.class_statistics[0], "at_trunk": False, "remeasured": False,  # its rows are gone: kept
                 "kept_because": "its training rows could not be read"}
    assert b["at_trunk"] and b["remeasured"] and b["blob"] != before.class_statistics[1]["blob"]
    assert c["at_trunk"] and not c["remeasured"]
    assert after.task_free is not None  # stale statistics still answer; the details say which


def test_no_held_back_rows_fits_on_training_rows_and_says_so(setting) -> None:
    net, rows, store = setting
    record = measure_and_fit(store, net, _sources(net, rows, held_back=False), kept=None, trunk_moved=False,
                             new_task="b", options=OPTIONS, seed=0)
    assert record.task_free["held_back_from"] == "training" and record.task_free["held_back_rows"] == 80


def test_a_task_with_neither_statistics_nor_rows_leaves_the_version_without_task_free_answers(setting) -> None:
    net, rows, store = setting
    record = measure_and_fit(store, net, _sources(net, rows, missing=frozenset({"a"})), kept=None, trunk_moved=False,
                             new_task="b", options=OPTIONS, seed=0)
    assert record.task_free is None
    with pytest.raises(Conflict, match="class statistics"):
        check_answerable("m", 2, [{"name": "a"}, {"name": "b"}], record.task_free)


@pytest.mark.parametrize(("measured", "promoted"), [(0.95, True), (0.90, True), (0.89, False), (None, False)])
def test_min_task_free_accuracy_guards_promotion(measured: float | None, promoted: bool) -> None:
    policy = PromotionPolicy("guarded", max_forgetting=0.05, min_task_free_accuracy=0.9)
    decision = decide(policy, kind="train", task="b", base=1, production=1, earlier_tasks=["a"], before={"a": 0.9},
                      after={"a": 0.9, "b": 0.9}, task_free_accuracy=measured)
    assert decision.promoted is promoted
    if measured is not None and not promoted:
        [violation] = decision.violations
        assert (violation.task, violation.rule, violation.after, violation.limit) == (
            TASK_FREE, "min_task_free_accuracy", measured, 0.9)
    if measured is None:
        assert TASK_FREE in decision.unchecked and "could not be checked" in decision.reason
    unguarded = decide(PromotionPolicy("guarded"), kind="train", task="b", base=1, production=1, earlier_tasks=["a"],
                       before={"a": 0.9}, after={"a": 0.9, "b": 0.9}, task_free_accuracy=measured)
    assert unguarded.promoted


def test_migration_0011_keeps_old_versions_task_bound_until_a_train_job_measures_them(tmp_path: Path) -> None:
    var = tmp_path / "var"
    shutil.copytree(FIXTURE, var)
    settings = Settings(var_dir=var)
    command.upgrade(alembic_config(settings), "head")
    with sqlite3.connect(var / "lifelong.sqlite3") as connection:  # 0007's rebuild of versions once took them
        assert connection.execute("SELECT count(*) FROM tasks").fetchone() == (2,)
    store = LocalBlobStore(var / "blobs")
    sessions: sessionmaker[Session] = make_session_factory(make_engine(settings))
    with sessions() as session:
        model = session.scalars(select(Model)).one()
        head = session.scalars(select(Version).where(Version.number == model.head)).one()
        assert model.task_free is None and head.class_statistics is None and head.task_free is None
        assert TaskFreeOptions.of(model.task_free) == TaskFreeOptions()
        old_tasks = [t["name"] for t in head.tasks]
        with pytest.raises(Conflict):
            check_answerable(model.name, head.number, head.tasks, head.task_free)
    _learn(settings, store, sessions, "third")
    with sessions() as session:
        newest = session.scalars(select(Version).order_by(Version.number.desc()).limit(1)).one()
        entries = newest.class_statistics
        assert [e["task"] for e in entries] == [*old_tasks, "third"]
        assert all(e["at_trunk"] for e in entries) and [e["remeasured"] for e in entries] == [
            *[True] * len(old_tasks), False]
        assert newest.task_free is not None and newest.task_free["held_back_from"] == "validation"  # third's slice
        assert np.isfinite(newest.task_free["held_back"]["ridge"]["accuracy"])
    command.downgrade(alembic_config(settings), "0010")
    command.upgrade(alembic_config(settings), "head")
