"""The embedded broker's transport: a consumer never takes a half-written message, and a damaged one
does not stop it. Real kombu connections over a real folder."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from queue import Empty

import pytest
from kombu import Connection

import app.jobs.file_transport as file_transport


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "queue").mkdir()
    return tmp_path / "queue"


def _connection(folder: Path) -> Connection:
    return Connection(f"{file_transport.ALIAS}://", transport_options={
        "data_folder_in": str(folder), "data_folder_out": str(folder), "store_processed": False})


@pytest.fixture
def channels(folder: Path) -> Iterator[tuple]:
    producer, consumer = _connection(folder), _connection(folder)
    yield producer.default_channel, consumer.default_channel
    producer.release()
    consumer.release()


def test_a_message_appears_only_once_it_is_whole(channels, monkeypatch: pytest.MonkeyPatch) -> None:
    producer, consumer = channels
    assert isinstance(producer, file_transport.Channel)
    seen_while_writing: list[object] = []
    publish = producer._publish

    def consumer_looks_first(temporary: str, final: str) -> None:
        assert os.path.getsize(temporary) > 0  # the whole message is on disk under the temporary name
        try:
            seen_while_writing.append(consumer._get("cpu"))
        except Empty:
            seen_while_writing.append("empty")
        publish(temporary, final)

    monkeypatch.setattr(producer, "_publish", consumer_looks_first)
    producer._put("cpu", {"body": "job-1"})
    assert seen_while_writing == ["empty"]  # written, fsynced, not yet renamed: invisible
    assert consumer._get("cpu") == {"body": "job-1"}


def test_every_message_arrives_whole_while_another_process_writes(channels) -> None:
    producer, consumer = channels
    count = 500

    def produce() -> None:
        for index in range(count):
            producer._put("cpu", {"body": index, "padding": "x" * 4096})

    writer = threading.Thread(target=produce)
    writer.start()
    received: list[int] = []
    while len(received) < count:
        try:
            received.append(consumer._get("cpu")["body"])
        except Empty:
            if not writer.is_alive() and len(received) < count:
                received.extend(item["body"] for item in _drain(consumer))
                break
    writer.join()
    assert sorted(received) == list(range(count))


def _drain(channel) -> Iterator[dict]:
    while True:
        try:
            yield channel._get("cpu")
        except Empty:
            return


def test_a_damaged_message_is_skipped_not_fatal(channels, folder: Path, caplog: pytest.LogCaptureFixture) -> None:
    producer, consumer = channels
    (folder / "0_damaged.cpu.msg").write_bytes(b"")  # sorts first: the oldest file
    producer._put("cpu", {"body": "after"})
    with caplog.at_level(logging.ERROR):
        assert consumer._get("cpu") == {"body": "after"}
    assert "could not be decoded" in caplog.text
    with pytest.raises(Empty):
        consumer._get("cpu")
