"""The client commands of `lifelong` against the real service: in process (typer's CliRunner), and as a
real process in a pseudo-terminal where a person's terminal matters (the live bar, Ctrl-C).

A newcomer's whole path is here: create a model, upload data, train with a followed job, inspect
the versions and the accuracy matrix, predict, roll the head back; plus the exit codes scripts use.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import shlex
import signal
import struct
import subprocess
import sys
import termios
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from app.cli import cli
from app.client import Client, Job
from app.commands.common import ExitCode
from tests.client.conftest import Trained
from tests.conftest import REPO, DigitsTask, Service, free_port, unique, wait_for


@pytest.fixture(scope="module")
def run(service: Service):  # noqa: ANN201
    runner = CliRunner()

    def invoke(*args: str, url: str | None = None, env: dict[str, str] | None = None) -> Result:
        return runner.invoke(cli, ["--url", url or service.url, *args], catch_exceptions=False, env=env)

    return invoke


def ok_json(result: Result):  # noqa: ANN201
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def test_train_watch_inspect_and_roll_back(run, digits: list[DigitsTask], tmp_path: Path) -> None:  # noqa: ANN001
    name = unique("cli")
    created = run("models", "create", name, "--input-shape", "64", "--hidden", "16")
    assert created.exit_code == 0 and f"created model {name}" in created.stdout
    assert ok_json(run("models", "show", name, "--json"))["head"] == 0

    first, second = digits[0], digits[1]
    files = {}
    for task in (first, second):
        np.savez(train := tmp_path / f"{task.name}-train.npz", x=task.x_train, y=task.y_train)
        np.savez(held := tmp_path / f"{task.name}-eval.npz", x=task.x_test, y=task.y_test)
        files[task.name] = (train, held)
    uploaded = ok_json(run("datasets", "upload", str(files[first.name][0]), "--json"))
    assert uploaded["n"] == len(first.x_train)

    listed_datasets = run("datasets", "list")
    assert listed_datasets.exit_code == 0 and uploaded["id"] in listed_datasets.stdout
    assert uploaded["id"] in [d["id"] for d in ok_json(run("datasets", "list", "--json"))]

    trained = run("tasks", "add", name, first.name, "--train", uploaded["id"], "--eval", str(files[first.name][1]),
                  "--epochs", "2", "--lr", "0.05", "--batch-size", "32")
    assert trained.exit_code == 0, trained.stderr
    assert f"{name} version 1" in trained.stdout and "succeeded" in trained.stderr
    assert "epoch 2/2" in trained.stderr and "elapsed" in trained.stderr  # off a terminal: a line per state
    job = ok_json(run("tasks", "add", name, second.name, "--train", str(files[second.name][0]), "--eval",
                      str(files[second.name][1]), "--epochs", "2", "--lambda", "2", "--json"))
    assert job["state"] == "succeeded" and job["result"]["version"] == 2

    matrix = run("evaluation", name)
    assert matrix.exit_code == 0 and first.name in matrix.stdout and second.name in matrix.stdout
    assert "average accuracy:" in matrix.stdout and "forgetting:" in matrix.stdout and "bwt:" in matrix.stdout
    assert len(ok_json(run("evaluation", name, "--json"))["rows"]) == 2

    listed = run("versions", "list", name)
    assert listed.exit_code == 0 and "(production: 2)" in listed.stdout
    shown = run("versions", "show", name, "2")
    assert shown.exit_code == 0 and "importance" in shown.stdout and first.name in shown.stdout
    # How the version was made (issue 11): the request's settings, where it ran, its loss per epoch.
    assert "made by:" in shown.stdout and "loss per epoch:" in shown.stdout and "importance per task" in shown.stdout
    assert [j["id"] for j in ok_json(run("jobs", "list", "--model", name, "--json"))][0] == job["id"]
    assert "succeeded" in run("jobs", "show", job["id"]).stdout
    assert run("jobs", "watch", job["id"]).exit_code == 0

    np.save(inputs := tmp_path / "inputs.npy", first.x_test)
    predicted = ok_json(run("predict", name, "--task", first.name, "--inputs", str(inputs), "--json"))
    assert predicted["version"] == 2 and len(predicted["predictions"]) == len(first.x_test)
    plain = run("predict", name, "--task", first.name, "--inputs", str(files[first.name][1]), "--version", "1")
    assert plain.exit_code == 0 and len(plain.stdout.split()) == len(first.x_test)
    # --output: the result goes to exactly that file, nothing to stdout, one summary line to stderr.
    written = run("predict", name, "--task", first.name, "--inputs", str(inputs), "--output", str(tmp_path / "y.bin"))
    assert written.exit_code == 0 and written.stdout == "", written.stdout
    assert f"{len(first.x_test)} rows" in written.stderr and len(written.stderr.strip().splitlines()) == 1
    assert np.load(tmp_path / "y.bin").tolist() == predicted["predictions"]
    both = run("predict", name, "--task", first.name, "--inputs", str(inputs), "--probabilities",
               "--output", str(tmp_path / "y.npz"), "--json")
    assert ok_json(both)["arrays"] == ["predictions", "probabilities"]
    with np.load(tmp_path / "y.npz") as arrays:
        assert arrays["predictions"].tolist() == predicted["predictions"]
        assert arrays["probabilities"].shape[0] == len(first.x_test)

    refreshed = run("importance", "refresh", name, "--data", str(files[second.name][1]), "--mode", "replace")
    assert refreshed.exit_code == 0, refreshed.stderr
    assert f"{name} version 3" in refreshed.stdout
    assert run("promote", name, "1").stdout.strip() == f"{name}: production is version 1"
    assert ok_json(run("models", "show", name, "--json"))["tasks"] == [first.name]

    # A finished task is followed by the new version's accuracy on every task, as the server has it.
    third = run("tasks", "add", name, digits[2].name, "--train", str(files[first.name][0]), "--epochs", "1",
                "--head-warmup", "4")
    assert third.exit_code == 0, third.stderr
    assert f"{name} version 4" in third.stdout and "accuracy of version 4 on each task" in third.stdout
    fourth = ok_json(run("versions", "show", name, "4", "--json"))
    assert fourth["made_by"]["head_warmup"] == 4  # the new head's passes before the task trained
    accuracy = fourth["accuracy"]
    assert list(accuracy) == [first.name]
    searched = run("versions", "show", name, "4").stdout  # λ "auto": each λ tried, with its validation loss
    assert "λ search" in searched and "mean loss" in searched, searched
    assert run("tasks", "add", name, "later", "--train", str(files[first.name][0]), "--head-warmup",
               "many").exit_code == 2  # a usage error, not a 422
    assert re.search(rf"^  {re.escape(first.name)} +{accuracy[first.name]:.4f}$", third.stdout, re.MULTILINE)
    assert re.search(rf"^  {re.escape(digits[2].name)} +-  \(no eval set\)  \(learned now\)$", third.stdout,
                     re.MULTILINE), third.stdout


def test_a_cancelled_job_exits_1(run, trained: Trained, digits: list[DigitsTask], tmp_path: Path) -> None:  # noqa: ANN001
    task = digits[2]
    np.savez(train := tmp_path / "train.npz", x=task.x_train, y=task.y_train)
    job_id = run("tasks", "add", trained.model, task.name, "--train", str(train), "--epochs", "5000",
                 "--batch-size", "8", "--detach").stdout.strip()
    waited = run("jobs", "watch", job_id, "--timeout", "0.1")
    assert waited.exit_code == ExitCode.TIMEOUT and "still" in waited.stderr
    assert run("jobs", "cancel", job_id, "--wait").stdout.strip() == f"job {job_id} cancelled"
    watched = run("jobs", "watch", job_id)
    assert watched.exit_code == ExitCode.JOB_FAILED and "cancelled" in watched.stderr


def test_exit_codes_say_what_went_wrong(run, trained: Trained) -> None:  # noqa: ANN001
    missing = run("models", "show", "no-such-model")
    assert missing.exit_code == ExitCode.NOT_FOUND and "no-such-model" in missing.stderr
    taken = run("models", "create", trained.model)
    assert taken.exit_code == ExitCode.HTTP_ERROR and "409" in taken.stderr
    assert run("promote", trained.model, "999").exit_code == ExitCode.NOT_FOUND
    assert run("models", "list", url=f"http://127.0.0.1:{free_port()}").exit_code == ExitCode.UNREACHABLE
    assert run("datasets", "upload", "/no/such/file.npz").exit_code == ExitCode.USAGE
    assert trained.model in [m["name"] for m in ok_json(run("models", "list", "--json"))]


def test_help_shows_types_in_words_and_every_default(run) -> None:  # noqa: ANN001
    from app.commands import learning
    from app.learning.schemas import TaskRequest

    shown = run("tasks", "add", "--help", env={"COLUMNS": "200"})
    assert shown.exit_code == 0
    text = " ".join(shown.stdout.split())
    assert "<" not in text and "tasks add [OPTIONS] MODEL TASK" in text
    for option, words in {"--train": "TEXT", "--epochs": "INTEGER", "--lr": "FLOAT", "--optimizer": "[sgd|adam]",
                          "--queue": "[cpu|gpu]"}.items():
        assert re.search(rf"{option} +{re.escape(words)} ", text), (option, text)
    # The server decides these defaults; --help says what they are, and they are the server's.
    fields = TaskRequest.model_fields
    for option, default in {"--epochs": learning.DEFAULT_EPOCHS, "--batch-size": learning.DEFAULT_BATCH_SIZE,
                            "--lr": learning.DEFAULT_LR, "--method": learning.DEFAULT_METHOD,
                            "--optimizer": learning.DEFAULT_OPTIMIZER}.items():
        assert fields[option[2:].replace("-", "_")].default == default, option
        assert re.search(rf"{option} .*?\[default: {re.escape(str(default))}\]", text), (option, text)
    assert "[default: production]" in text and "[default: from the labels]" in text and "[default: auto]" in text
    watch = " ".join(run("jobs", "watch", "--help", env={"COLUMNS": "200"}).stdout.split())
    assert "JOB_ID TEXT" in watch and "--timeout FLOAT" in watch and "Ctrl-C" in watch


def _read_pty(master: int, seen: list[str], until: Callable[[str], bool], deadline_s: float) -> str:
    """What the program wrote to its terminal, without escape codes, once `until` holds of it."""
    def ready() -> bool:
        while select.select([master], [], [], 0.05)[0]:
            try:
                seen.append(os.read(master, 65536).decode(errors="replace"))
            except OSError:  # the program has exited and closed its side
                break
        return until(ANSI.sub("", "".join(seen)))

    try:
        wait_for(ready, deadline_s=deadline_s, what="the CLI's terminal output")
    except AssertionError as error:
        raise AssertionError(f"{error}; it wrote:\n{ANSI.sub('', ''.join(seen))[-3000:]}") from None
    return ANSI.sub("", "".join(seen))


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def _in_terminal(service: Service, *args: str) -> tuple[subprocess.Popen, int]:
    """The real `lifelong` in a pseudo-terminal 200 columns wide, as a person runs it."""
    master, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    env = {**os.environ, "PYTHONPATH": str(REPO), "TERM": "xterm-256color", "COLUMNS": "200"}
    env.pop("LIFELONG_URL", None)
    process = subprocess.Popen([sys.executable, "-m", "app.cli", "--url", service.url, *args], stdin=child,
                               stdout=child, stderr=child, env=env, cwd=REPO)
    os.close(child)
    return process, master


def _stop_with_ctrl_c(process: subprocess.Popen, master: int, seen: list[str]) -> str:
    """Ctrl-C, reading the terminal until the program has exited: a pty holds a few KB, so a program whose
    terminal nobody reads blocks on its next write, and its live bar fills that in seconds on a loaded machine."""
    dispositions = _signal_lines(process.pid)
    process.send_signal(signal.SIGINT)
    try:
        said = _read_pty(master, seen, lambda text: process.poll() is not None and "cancel it:" in text,
                         deadline_s=60)
    except AssertionError as error:
        raise AssertionError(f"{error}\nthe CLI's signals before Ctrl-C: {dispositions}") from None
    assert process.returncode == ExitCode.INTERRUPTED == 130
    return said


def _signal_lines(pid: int) -> str:
    """The process's blocked, ignored and caught signal masks (/proc/PID/status), for a failure message."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return "unknown"
    return "; ".join(line for line in lines if line.startswith(("SigBlk", "SigIgn", "SigCgt")))


def test_ctrl_c_leaves_the_job_running_and_says_how_to_watch_or_cancel_it(
        service: Service, lifelong: Client, trained: Trained, digits: list[DigitsTask], tmp_path: Path) -> None:
    task = digits[2]
    np.savez(train := tmp_path / "train.npz", x=task.x_train, y=task.y_train)
    # A long job, followed by `tasks add` in a terminal: a live bar with the epoch and an ETA.
    process, master = _in_terminal(service, "tasks", "add", trained.model, task.name, "--train", str(train),
                                   "--epochs", "50000", "--batch-size", "8", "--lambda", "1")
    seen: list[str] = []
    job_id = None
    try:
        text = _read_pty(master, seen, lambda text: re.search(r"job \w+: learning", text) is not None, deadline_s=60)
        job_id = re.search(r"job (\w+): learning", text).group(1)
        _read_pty(master, seen, lambda text: re.search(r"epoch \d+/50000, loss [\d.]+, \d:\d\d:\d\d elapsed,"
                                                       r" ETA \d+:\d\d:\d\d", text) is not None, deadline_s=90)
        said = _stop_with_ctrl_c(process, master, seen)
        _check_the_job_went_on(service, lifelong, job_id, said)
    finally:
        process.kill()
        os.close(master)
        if job_id is not None and not lifelong.get_job(job_id).finished:
            lifelong.cancel_job(job_id).wait(timeout=60)  # the worker is shared with the other tests


def _check_the_job_went_on(service: Service, lifelong: Client, job_id: str, said: str) -> None:
    assert lifelong.get_job(job_id).state in ("queued", "running")
    assert f"stopped following job {job_id}; the job keeps running on the server." in said
    watch_command = f"lifelong --url {service.url} jobs watch {job_id}"
    cancel_command = f"lifelong --url {service.url} jobs cancel {job_id}"
    assert f"watch it:  {watch_command}" in said and f"cancel it: {cancel_command}" in said

    # The printed watch command, run as printed: the clock goes on from the job's start, not from zero.
    wait_for(lambda: _age_s(lifelong.get_job(job_id)) >= 3, deadline_s=30, what="the job to be 3 s old")
    process, master = _in_terminal(service, *shlex.split(watch_command)[1:])
    seen: list[str] = []
    try:
        text = _read_pty(master, seen, lambda text: "ETA" in text, deadline_s=30)
        first_elapsed = re.search(r"(\d+):(\d\d):(\d\d) elapsed", text).groups()
        assert int(first_elapsed[0]) * 3600 + int(first_elapsed[1]) * 60 + int(first_elapsed[2]) >= 3, text
        assert re.search(r"\d+/\d+ steps", text)
        said = _stop_with_ctrl_c(process, master, seen)
    finally:
        process.kill()
        os.close(master)
    assert f"cancel it: {cancel_command}" in said
    assert lifelong.get_job(job_id).state in ("queued", "running")

    # And the printed cancel command cancels it.
    cancelled = subprocess.run([sys.executable, "-m", "app.cli", *shlex.split(cancel_command)[1:], "--wait"],
                               capture_output=True, text=True, timeout=60, cwd=REPO)
    assert cancelled.returncode == 0 and cancelled.stdout.strip() == f"job {job_id} cancelled", cancelled
    assert lifelong.get_job(job_id).state == "cancelled"


def _age_s(job: Job) -> float:
    started = job.data.get("started_at")
    return 0.0 if not started else (datetime.now(UTC) - datetime.fromisoformat(started)).total_seconds()


def test_tasks_add_takes_the_lambda_selection_and_says_how_it_chose(run, digits: list[DigitsTask],  # noqa: ANN001
                                                                    tmp_path: Path) -> None:
    name = unique("cli-rules")
    assert run("models", "create", name, "--input-shape", "64", "--hidden", "16").exit_code == 0
    first, second = digits[0], digits[1]
    files = []
    for task in (first, second):
        np.savez(train := tmp_path / f"{task.name}.npz", x=task.x_train, y=task.y_train)
        files.append(str(train))
    fast = ["--epochs", "2", "--batch-size", "32"]
    assert run("tasks", "add", name, first.name, "--train", files[0], *fast).exit_code == 0
    added = run("tasks", "add", name, second.name, "--train", files[1], *fast, "--lambda-grid", "0.01,100",
                "--lambda-selection", "constrained", "--new-task-tolerance", "0.5")
    assert added.exit_code == 0, added.stderr
    # 0.5 admits both λ; a slice of 26 rows resolves it (accuracy basis); the line says so.
    assert "chosen by the constrained rule on validation accuracy" in added.stdout
    assert "within 0.5 of the best new-task: 0.01, 100" in added.stdout
    bad = run("tasks", "add", name, "third", "--train", files[0], "--lambda-selection", "best")
    assert bad.exit_code == 2 and "best" in bad.stderr
    bad = run("tasks", "add", name, "third", "--train", files[0], "--new-task-tolerance", "2")
    assert bad.exit_code == 2
    refused = run("tasks", "add", name, "third", "--train", files[0], "--lambda", "1", "--lambda-selection", "mean")
    assert refused.exit_code != 0 and "lambda_selection" in refused.stderr


# --- issue 26 item 8: files named as files, texts from files, the server's λ grid, one name for production ---


def test_a_path_that_names_no_file_is_a_usage_error_and_a_dataset_id_stays_one(run, trained: Trained,  # noqa: ANN001
                                                                              tmp_path: Path) -> None:
    model, task = trained.model, trained.tasks[0].name
    for args, missing in (
            (("tasks", "add", model, "t3", "--train", "data/missing.npz"), "data/missing.npz"),
            (("tasks", "add", model, "t3", "--train", "missing.csv"), "missing.csv"),
            (("importance", "refresh", model, "--data", str(tmp_path / "gone.jsonl")), str(tmp_path / "gone.jsonl")),
            (("evaluate", model, "--data", "eval/missing.npz", "--task", task), "eval/missing.npz"),
            (("drift", model, "batch.txt"), "batch.txt")):
        refused = run(*args)
        assert refused.exit_code == ExitCode.USAGE and f"no such file: {missing}" in refused.stderr, (args, refused)
    unknown = run("tasks", "add", model, "t3", "--train", "no-such-dataset-id")  # no '/' nor suffix: an id
    assert unknown.exit_code == ExitCode.NOT_FOUND and "no such file" not in unknown.stderr, unknown.stderr


def test_predict_reads_texts_from_txt_jsonl_and_csv_files(run, trained: Trained, tmp_path: Path) -> None:  # noqa: ANN001
    from app.commands.inputs import read_inputs

    texts = ["a first text", "another, with a comma", 'and "quotes"']
    (txt := tmp_path / "texts.txt").write_text("\n".join(texts[:2]) + "\n\n" + texts[2] + "\r\n")
    (jsonl := tmp_path / "texts.jsonl").write_text(
        "\n".join([json.dumps({"text": texts[0], "label": 1}), "", json.dumps(texts[1]),
                   json.dumps({"text": texts[2]})]))
    (csv_file := tmp_path / "texts.csv").write_text(
        'id,Text,label\n1,a first text,0\n2,"another, with a comma",1\n3,"and ""quotes""",0\n')
    for path in (txt, jsonl, csv_file):
        assert read_inputs(path) == texts, path
    # Over HTTP they go as texts (the JSON body's `texts`): 2,001 of them pass the server's cap on texts,
    # which names them, where numpy's reading of the file as .npy had failed before anything was sent.
    (many := tmp_path / "many.txt").write_text("\n".join(f"text {i}" for i in range(2001)))
    over = run("predict", trained.model, "--task", trained.tasks[0].name, "--inputs", str(many))
    assert over.exit_code == ExitCode.HTTP_ERROR and "2001 texts in one request" in over.stderr, over.stderr
    # A .csv of numbers (no `text` column) is rows of inputs, like a .npy.
    rows = trained.tasks[0].x_test[:4]
    np.savetxt(numbers := tmp_path / "rows.csv", rows, delimiter=",")
    answer = ok_json(run("predict", trained.model, "--task", trained.tasks[0].name, "--inputs", str(numbers),
                         "--json"))
    assert len(answer["predictions"]) == 4
    # What cannot be read is exit 2 naming the file (and the line), not numpy's words about pickles.
    (bad_json := tmp_path / "bad.jsonl").write_text('{"text": "fine"}\n{"label": 3}\n')
    (latin := tmp_path / "latin.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    (ragged := tmp_path / "ragged.csv").write_text("1,2\n3\n")
    (empty := tmp_path / "empty.txt").write_text("\n\n")
    (other := tmp_path / "texts.dat").write_text("a text\n")
    for path, why in ((bad_json, "line 2 is neither a string nor an object with a string 'text'"),
                      (latin, "not UTF-8 text"), (ragged, "its rows have different numbers of cells"),
                      (empty, "holds no inputs"),
                      (other, "not a readable .npy/.npz file; inputs are .npy, .npz")):
        refused = run("predict", trained.model, "--task", trained.tasks[0].name, "--inputs", str(path))
        assert refused.exit_code == ExitCode.USAGE and f"--inputs {path}: {why}" in refused.stderr, refused.stderr
        assert "pickle" not in refused.stderr


def test_tasks_add_help_shows_the_servers_lambda_grid() -> None:
    from app.mas.validation import DEFAULT_GRID

    shown = CliRunner().invoke(cli, ["tasks", "add", "--help"], env={"COLUMNS": "240"})
    grid = ",".join(f"{value:g}" for value in DEFAULT_GRID)
    assert grid.startswith("0.001,") and f"[default: {grid}]" in " ".join(shown.stdout.split()), shown.stdout


def test_production_is_the_one_name_and_a_finetune_reports_no_lambda(run, lifelong: Client,  # noqa: ANN001
                                                                      digits: list[DigitsTask],
                                                                      tmp_path: Path) -> None:
    name = unique("cli-names")
    assert run("models", "create", name, "--input-shape", "64", "--hidden", "16").exit_code == 0
    np.savez(train := tmp_path / "train.npz", x=digits[0].x_train, y=digits[0].y_train)
    first = run("tasks", "add", name, digits[0].name, "--train", str(train), "--epochs", "1")  # λ auto, no search
    assert first.exit_code == 0, first.stderr
    tuned = run("tasks", "add", name, digits[1].name, "--train", str(train), "--epochs", "1", "--method", "finetune")
    assert tuned.exit_code == 0 and "λ" not in tuned.stdout + tuned.stderr, tuned.stdout
    shown = run("versions", "show", name, "2").stdout
    made_by = shown[shown.index("made by:"):]
    assert "method" in made_by and "finetune" in made_by and not re.search(r"lambda|λ|penalty", made_by), made_by
    first_made_by = run("versions", "show", name, "1").stdout.split("made by:")[1]
    assert "lambda used" not in first_made_by and "no earlier task to protect" in first_made_by, first_made_by

    listed = run("versions", "list", name).stdout
    assert f"{name} (production: 2)" in listed and "head" not in listed, listed
    assert re.search(r"^production +2$", run("models", "show", name).stdout, re.MULTILINE)
    header = next(line for line in run("models", "list").stdout.splitlines() if " kind " in line)
    assert "production" in header and "head" not in header, header
    assert "(production: 2)" in run("evaluation", name).stdout
    assert not re.search(r"│ head ", run("--help").stdout)  # the deprecated command is hidden …
    old = run("head", "set", name, "1")  # … and still moves production, saying what to use instead
    assert old.exit_code == 0 and old.stdout.strip() == f"{name}: production is version 1", old
    assert "deprecated" in old.stderr and "lifelong promote MODEL VERSION" in old.stderr
    assert lifelong.get_model(name)["aliases"]["production"] == 1
    assert run("promote", name, "2").stdout.strip() == f"{name}: production is version 2"
    for args in (("set", name, "staging", "1"), ("delete", name, "staging"), ("set", name, "staging", "2")):
        assert run("aliases", *args).exit_code == 0
    moves = [line.split("│")[2:4] for line in run("aliases", "history", name, "staging").stdout.splitlines()
             if line.count("│") > 4 and "from" not in line]
    assert [[cell.strip() for cell in move] for move in moves] == [["new", "2"], ["1", "deleted"], ["new", "1"]]
