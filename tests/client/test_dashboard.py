"""The dashboard over a real run, drawn by headless Chromium and driven over the DevTools protocol.

One small run on the session's service: two models learn the same two digit tasks, one with MAS (the
second task with λ "auto") and one by fine-tuning; a fine-tune at lr 5 wrecks the MAS model's earlier
tasks and is kept as candidate, not promoted; a job on a stale base fails with a conflict. Chromium
(Debian's `chromium`) loads /dashboard and the tests read the DOM its JavaScript built, click as a user
does (real mouse events), and save screenshots into each test's tmp dir. Chromium is driven over
`--remote-debugging-pipe` (commands on its fd 3, replies on fd 4), so no WebSocket library is needed;
every wait is for a DOM condition, with a deadline. Without chromium the browser tests skip.
`LIFELONG_DASHBOARD_SCREENSHOT=docs/dashboard.png` also saves the README's screenshot.
"""

from __future__ import annotations

import base64
import dataclasses
import fcntl
import json
import os
import re
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.conftest import Api, DigitsTask, Service, free_port
from tests.security.conftest import run_cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
WIDTH = 1400
FAST = {"epochs": 3, "batch_size": 32, "lr": 0.05}


@dataclass(frozen=True)
class Run:
    service: Service
    mas: str
    finetune: str
    kept: dict[str, Any]    # the wrecking fine-tune on the MAS model: kept as candidate
    failed: dict[str, Any]  # the stale-base job on the fine-tune model: failed as conflict
    tasks: list[DigitsTask]

    def get(self, path: str) -> Any:
        response = httpx.get(self.service.url + path, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def url(self, **view: str | int) -> str:
        return f"{self.service.url}/dashboard#" + "&".join(f"{k}={v}" for k, v in view.items())


@pytest.fixture(scope="module")
def run(service: Service, api: Api) -> Run:
    first, second, third = api.digits[:3]
    mas = api.create_model("mas")  # guarded: the default
    finetune = api.create_model("finetune", promotion={"policy": "auto"})
    api.learn(mas, first, method="mas", **{"lambda": 1.0}, **FAST)
    api.learn(mas, second, method="mas", lambda_grid=[0.1, 1.0, 10.0], **FAST)
    for task in (first, second):
        api.learn(finetune, task, method="finetune", **FAST)
    kept = api.wait_job(api.submit_task(mas, third, method="finetune", **{**FAST, "lr": 5.0})["id"])
    assert kept["result"]["promotion"]["promoted"] is False, kept
    failed = api.wait_job(api.submit_task(finetune, third, base_version=1, method="finetune", **FAST)["id"])
    assert failed["state"] == "failed" and failed["error"]["type"] == "conflict", failed
    return Run(service, mas, finetune, kept, failed, api.digits[:3])


@pytest.fixture(scope="module")
def wide(api: Api) -> str:
    """A model of 8 tasks for the matrix's width: the digits tasks again under new names, 1 epoch each with
    λ 1, after a first task of 20 epochs (the loss chart's default length) with λ "auto", which on a first
    task searches nothing."""
    model = api.create_model("wide", promotion={"policy": "auto"})
    for i in range(8):
        task = dataclasses.replace(api.digits[i % 3], name=f"{api.digits[i % 3].name}-{i + 1}")
        api.learn(model, task, batch_size=32, **({"epochs": 20} if i == 0 else {"epochs": 1, "lambda": 1.0}))
    return model


# --- Chromium over the DevTools protocol ---------------------------------------------------------


def _pipe() -> tuple[int, int]:
    """A pipe whose ends are numbered 5 or more, so moving them to Chromium's fds 3 and 4 cannot clash."""
    read, write = os.pipe()
    ends = tuple(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 5) for fd in (read, write))
    os.close(read)
    os.close(write)
    return ends


class Chromium:
    """One headless page. Commands and replies are JSON objects ended by a NUL byte; events that arrive
    while waiting for a reply are kept in `events`."""

    def __init__(self, profile: Path, log: Path):
        commands_in, self.commands = _pipe()
        self.replies, replies_out = _pipe()
        def wire() -> None:  # in the child, before exec: Chromium reads commands on fd 3 and replies on fd 4
            os.dup2(commands_in, 3)
            os.dup2(replies_out, 4)

        with open(log, "wb") as stderr:
            self.process = subprocess.Popen(
                [CHROMIUM, "--headless", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
                 "--disable-dev-shm-usage", "--hide-scrollbars", "--no-first-run", f"--user-data-dir={profile}",
                 "about:blank"],
                preexec_fn=wire, close_fds=False, stdout=subprocess.DEVNULL, stderr=stderr)
        os.close(commands_in)
        os.close(replies_out)
        self.buffer, self.last_id, self.events, self.session = b"", 0, [], None
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.send("Network.enable")
        self.send("Runtime.enable")  # the page's uncaught errors arrive as Runtime.exceptionThrown events
        self.send("Emulation.setDeviceMetricsOverride", width=WIDTH, height=1000, deviceScaleFactor=1, mobile=False)

    def _message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            ready, _, _ = select.select([self.replies], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise AssertionError("Chromium did not answer in time")
            chunk = os.read(self.replies, 1 << 20)
            if not chunk:
                raise AssertionError(f"Chromium exited with {self.process.wait()}")
            self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, timeout_s: float = 30, **params: Any) -> dict[str, Any]:
        self.last_id += 1
        message = {"id": self.last_id, "method": method, "params": params}
        if self.session and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self.session
        os.write(self.commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout_s
        while True:
            reply = self._message(deadline)
            if reply.get("id") != self.last_id:
                self.events.append(reply)
            elif "error" in reply:
                raise AssertionError(f"{method}: {reply['error']}")
            else:
                return reply["result"]

    def evaluate(self, expression: str, timeout_s: float = 30) -> Any:
        result = self.send("Runtime.evaluate", timeout_s=timeout_s + 5, expression=expression,
                           returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression[:200]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait(self, condition: str, what: str, deadline_s: float = 30) -> Any:
        """The condition's first truthy value, checked in the page each 20 ms until the deadline."""
        return self.evaluate(f"""new Promise((resolve, reject) => {{
          const end = performance.now() + {deadline_s * 1000};
          (function check() {{
            let value = null;
            try {{ value = ({condition}); }} catch (_) {{ /* not drawn yet */ }}
            if (value) resolve(value);
            else if (performance.now() > end) reject(new Error({json.dumps("timed out waiting for " + what)}));
            else setTimeout(check, 20);
          }})();
        }})""", timeout_s=deadline_s)

    def navigate(self, url: str) -> None:
        """A new document each time (from about:blank): a change of the hash alone would not reload the page."""
        for address in ("about:blank", url):
            self.send("Page.navigate", url=address)
            self.wait(f"location.href === {json.dumps(address)} && document.readyState !== 'loading'",
                      f"{address} to open")

    def open(self, url: str) -> None:
        self.navigate(url)
        self.wait("document.body.dataset.ready === 'true'", f"{url} to draw itself")

    def shown(self, model: str, version: int | None = None, compare: str | None = None) -> None:
        """Wait until a whole refresh has drawn this model (and this version, and this comparison)."""
        checks = [f"d.model === {json.dumps(model)}"]
        if version is not None:
            checks.append(f"d.version === '{version}'")
        if compare is not None:
            checks.append(f"d.compare === {json.dumps(compare)}")
        self.wait(f"(d => {' && '.join(checks)})(document.body.dataset)",
                  f"{model} v{version} beside {compare} to be drawn")

    def click(self, selector: str) -> None:
        """A real mouse click at the middle of the element."""
        x, y = self.evaluate(f"""(() => {{ const e = document.querySelector({json.dumps(selector)});
          e.scrollIntoView({{block: "center"}});
          const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()""")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def all(self, selector: str, expression: str) -> list[Any]:
        """`expression` of each element `e` that matches `selector`, in document order."""
        return self.evaluate(f"[...document.querySelectorAll({json.dumps(selector)})].map((e) => ({expression}))")

    def text(self, selector: str) -> str:
        """The element's text ("" when there is none); SVG elements have no innerText, only textContent."""
        found = f"document.querySelector({json.dumps(selector)})"
        return self.evaluate(f"(e => e ? e.innerText ?? e.textContent : '')({found})")

    def screenshot(self, path: Path) -> Path:
        height = self.evaluate("document.documentElement.scrollHeight")
        shot = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": WIDTH, "height": height, "scale": 1})
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout_s=10)
        except AssertionError:
            pass
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self.commands)
        os.close(self.replies)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    if CHROMIUM is None:
        pytest.skip("needs Debian's chromium (apt-get install chromium)")
    folder = tmp_path_factory.mktemp("chromium")
    page = Chromium(folder / "profile", folder / "chromium.log")
    yield page
    page.close()


# --- the page --------------------------------------------------------------------------------------


def test_the_page_is_served_whole_with_nothing_from_outside(service: Service) -> None:
    page = httpx.get(service.url + "/dashboard", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for part in ('id="heatmap"', 'id="lineage-graph"', 'id="omega"', 'id="job-list"', 'id="details"', 'id="compare"',
                 "/v1/models"):
        assert part in page.text
    # The only absolute URL is SVG's namespace (a name, never fetched): no CDN, font or script from outside.
    assert set(re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}[^\s\"'`)]*", page.text)) == {"http://www.w3.org/2000/svg"}
    assert "<script src" not in page.text and "<link" not in page.text and "@import" not in page.text


@needs_chromium
def test_while_data_loads_the_page_says_loading_not_none(run: Run, browser: Chromium, tmp_path: Path) -> None:
    # Hold every API request: the page must show its loading state, not "none" or "no model selected".
    browser.send("Fetch.enable", patterns=[{"urlPattern": "*/v1/*"}])
    try:
        browser.navigate(run.url(model=run.mas))
        browser.wait("document.querySelectorAll('.loading').length >= 8", "the page's loading placeholders")
        text = browser.evaluate("document.body.innerText")
        assert text.count("loading…") >= 8, text
        assert not re.search(r"\bnone\b|no model selected|no evaluation yet|no importance yet", text), text
        assert browser.evaluate("document.body.dataset.ready") is None
        browser.screenshot(tmp_path / "loading.png")
    finally:
        browser.send("Fetch.disable")  # releases the held requests
    browser.wait("document.body.dataset.ready === 'true'", "the data after the held requests")
    assert browser.all(".loading", "e.id || e.tagName") == []


@needs_chromium
def test_heatmap_with_a_colour_blind_safe_scale_legend_and_values(run: Run, browser: Chromium, tmp_path: Path) -> None:
    browser.open(run.url(model=run.mas))
    browser.shown(run.mas, 2)
    matrix = run.get(f"/v1/models/{run.mas}/evaluation")
    assert browser.all("#heatmap-table tr[data-version]", "Number(e.dataset.version)") == [1, 2]
    cells = browser.all("#heatmap-table td.cell", "[e.closest('tr').dataset.version, e.dataset.task, e.innerText, "
                                                  "getComputedStyle(e).backgroundColor, getComputedStyle(e).color]")
    assert [(int(v), task, float(value)) for v, task, value, _, _ in cells] == [
        (row["version"], task, round(accuracy, 3))
        for row in matrix["rows"] for task, accuracy in row["accuracy"].items()]
    for *_, value, background, ink in cells:  # the value printed in each cell, readable on its colour
        assert contrast(rgb(background), rgb(ink)) >= 4.5, (value, background, ink)
    # viridis: lightness rises with accuracy, and nearby accuracies get visibly different colours.
    scale = browser.evaluate("[0, 0.25, 0.5, 0.75, 0.9, 0.917, 0.95, 1].map((a) => heatColor(a))")
    lightness = [luminance(rgb(c)) for c in scale]
    assert lightness == sorted(lightness) and len(set(scale)) == len(scale)
    assert distance(rgb(scale[5]), rgb(scale[7])) > 40, (scale[5], scale[7])  # 0.917 vs 1.000
    assert all(abs(r - g) > 30 or abs(g - b) > 30 for r, g, b in map(rgb, scale))  # hues, not a red-green ramp
    inks = browser.evaluate("Array.from({length: 101}, (_, i) => [heatColor(i / 100), inkOn(i / 100)])")
    assert min(contrast(rgb(cell), (0, 0, 0) if ink == "#000" else (255, 255, 255)) for cell, ink in inks) >= 4.5
    legend = browser.all("#heatmap-legend-svg text", "e.textContent")
    assert [t for t in legend if re.fullmatch(r"\d\.\d\d", t)] == ["0.00", "0.25", "0.50", "0.75", "1.00"], legend
    assert len(browser.all("#heatmap-legend-svg linearGradient stop", "1")) == 11
    for key, element in (("average_accuracy", "#avg-acc"), ("forgetting", "#forgetting"), ("bwt", "#bwt")):
        assert browser.text(element) == f"{matrix[key]:.4f}"
    methods = browser.all("#heatmap-table tr[data-version] td:nth-child(3)", "e.innerText")
    assert methods[0] == "MAS λ=1" and re.fullmatch(r"MAS λ=\d[\d.e-]* \(auto\)", methods[1]), methods
    # The Ω histogram's axis is labelled at whole decades: 1e-3, 1e-2 … never 1e-8.1.
    ticks = browser.all("#omega-hist-svg text.tick", "e.textContent")
    assert len(ticks) >= 2 and all(re.fullmatch(r"1e-?\d+", t) for t in ticks), ticks
    decades = [int(t[2:]) for t in ticks]
    assert decades == sorted(decades) and len(set(decades)) == len(decades)

    shot = browser.screenshot(tmp_path / "heatmap.png")
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=float)
    assert pixels.shape[1] == WIDTH
    top = rgb(cells[0][3])
    assert (np.linalg.norm(pixels - top, axis=2) < 6).sum() > 800, "the heatmap's cells are not on the screenshot"


@needs_chromium
def test_aliases_are_marked_and_a_click_shows_how_a_version_was_made(
        run: Run, browser: Chromium, tmp_path: Path) -> None:
    browser.open(run.url(model=run.mas))
    browser.shown(run.mas, 2)
    nodes = browser.all("#lineage-graph g.version",
                        "[e.dataset.version, [...e.querySelectorAll('.alias-tag')].map((t) => t.textContent)]")
    assert nodes == [["0", []], ["1", []], ["2", ["production"]], ["3", ["candidate"]]]
    assert browser.all("#model-list li.selected small", "e.innerText") == ["production v2 · candidate v3 · 2 tasks"]

    browser.click('#lineage-graph g.version[data-version="3"] circle.node')  # the kept, not promoted fine-tune
    browser.shown(run.mas, 3)
    assert browser.evaluate("location.hash").endswith("version=3")
    kept = run.get(f"/v1/models/{run.mas}/versions/3")
    made = dict(browser.all("#made-by tr", "[e.cells[0].innerText, e.cells[1].innerText]"))
    assert made["job"] == f"train job {run.kept['id'][:12]}" and made["method"] == "fine-tune" and "λ" not in made
    assert made["optimizer"] == "sgd · lr 5 · momentum 0.9" and made["epochs · batch · seed"] == "3 · 32 · 0"
    assert made["worker · device"].startswith(kept["made_by"]["worker"]) and " · cpu" in made["worker · device"]
    assert re.fullmatch(r"\d+\.\d\d s", made["wall time"]) and made["lifelong"] == kept["made_by"]["lifelong"]
    assert kept["made_by"]["request"]["train_dataset"] in made["datasets"]
    assert browser.text("#details-title").startswith(f"Version 3 · {run.tasks[2].name}")
    assert browser.text("#version-aliases") == "candidate"
    accuracy = browser.all("#version-accuracy td.cell", "[e.dataset.task, e.innerText]")
    assert accuracy == [[t, f"{a:.3f}"] for t, a in kept["accuracy"].items()] and len(accuracy) == 3

    # The loss curve: one point per epoch, higher loss drawn higher (this one falls over decades: a log axis).
    losses = kept["made_by"]["loss_per_epoch"]
    path = browser.evaluate("document.querySelector('#loss-curve').getAttribute('d')")
    points = [(float(x), float(y)) for x, y in re.findall(r"[ML]([\d.]+) ([\d.]+)", path)]
    assert len(points) == len(losses) == 3 and [x for x, _ in points] == sorted(x for x, _ in points)
    assert sorted(range(3), key=lambda i: points[i][1]) == sorted(range(3), key=lambda i: -losses[i])
    assert "mean loss (log)" in browser.text("#loss-chart")

    # Ω per layer, in total and per task, as the API reports it.
    omega = kept["importance"]
    header = browser.all("#omega-table th", "e.innerText.split('\\n')[0]")
    assert header == ["layer", "total mean Ω", "", *omega["tasks"], "max Ω"]
    assert browser.all("#omega-table tr[data-layer]", "[e.dataset.layer, e.cells[1].innerText]") == [
        [name, f"{s['mean']:.2e}".replace("e-0", "e-").replace("e+0", "e+")] for name, s in omega["layers"].items()]
    browser.screenshot(tmp_path / "kept-version.png")

    browser.click('#heatmap-table tr[data-version="2"] td')  # production, whose λ was chosen by a search
    browser.shown(run.mas, 2)
    production = run.get(f"/v1/models/{run.mas}/versions/2")["made_by"]
    search = browser.all("#lambda-search tr:not(:first-child)", "[...e.cells].map((c) => c.innerText)")
    assert [float(row[0]) for row in search] == [s["lambda"] for s in production["lambda_search"]] == [0.1, 1.0, 10.0]
    assert [float(row[0]) for row in search if row[-1] == "chosen"] == [production["lambda"]]
    assert browser.all("#lambda-search th", "e.innerText")[-2] == "mean loss"  # what breaks a tie of accuracy
    assert [float(row[-2]) for row in search] == [round(s["mean_loss"], 3) for s in production["lambda_search"]]
    assert browser.text("#made-by").count("auto: best of 3 on validation") == 1
    browser.screenshot(tmp_path / "production-version.png")


@needs_chromium
def test_the_matrix_has_a_task_free_column_and_a_version_its_task_free_section(
        run: Run, browser: Chromium, tmp_path: Path) -> None:
    browser.open(run.url(model=run.mas))
    browser.shown(run.mas, 2)
    matrix = run.get(f"/v1/models/{run.mas}/evaluation")
    header = browser.all("#heatmap-table th", "e.innerText")
    assert header[-2:] == ["task-free", "neg. flips"] and header[3:-2] == matrix["tasks"]
    column = browser.all("#heatmap-table tr[data-version] td.task-free", "[e.className, e.innerText, e.title]")
    assert all(row["task_free"] is not None for row in matrix["rows"]), matrix["rows"]
    assert [(kind, float(value)) for kind, value, _ in column] == [
        ("task-free", round(row["task_free"]["accuracy"], 3)) for row in matrix["rows"]]
    assert all("task accuracy" in title and "ECE" in title for *_, title in column)
    assert "task-free: ridge" in browser.text("#model-info")

    detail = run.get(f"/v1/models/{run.mas}/versions/2")["task_free"]
    fields = dict(browser.all("#version-task-free tr", "[e.dataset.field, e.cells[1].innerText]"))
    assert fields["predictor"] == detail["predictor"] == "ridge"
    assert fields["held-back accuracy"] == f"{detail['accuracy']:.4f}" and fields["ECE"] == f"{detail['ece']:.4f}"
    assert fields["held back"] == f"{detail['held_back_rows']} rows from {detail['held_back_from']}"
    statistics = browser.all("#task-free-tasks tr[data-task]", "[...e.cells].map((c) => c.innerText)")
    assert statistics == [[task, str(s["n"]), "yes" if s["at_this_trunk"] else "no", "yes" if s["remeasured"] else "no"]
                          for task, s in detail["tasks"].items()]
    assert [row[0] for row in statistics] == [t.name for t in run.tasks[:2]]

    browser.click('#lineage-graph g.version[data-version="0"] circle.node')  # the initial weights: no task-free
    browser.shown(run.mas, 0)
    assert browser.text("#version-task-free").startswith("none")
    browser.screenshot(tmp_path / "task-free.png")


@needs_chromium
def test_the_matrix_shows_flips_and_the_drift_panel_the_latest_reports(
        run: Run, api: Api, browser: Chromium, tmp_path: Path) -> None:
    browser.open(run.url(model=run.finetune))
    browser.shown(run.finetune, 2)
    assert browser.text("#drift-list").startswith("no drift reports yet")
    first, second = run.tasks[:2]
    for rows in (first.x_test, np.random.default_rng(0).uniform(0, 16, size=(40, 64))):  # like a task, then noise
        response = api.http.post(f"/v1/models/{run.mas}/drift", json={"data": {"inputs": rows.tolist()}})
        assert response.status_code == 202, response.text
        assert api.wait_job(response.json()["id"])["state"] == "succeeded"
    browser.open(run.url(model=run.mas))
    browser.shown(run.mas, 2)
    reports = run.get(f"/v1/models/{run.mas}/drift")
    shown = browser.all("#drift-table tr[data-report]", "[Number(e.dataset.report), e.className, "
                        "e.querySelector('td.nearest').innerText, [...e.querySelectorAll('.verdict')]"
                        ".map((v) => [v.dataset.task, v.dataset.drift === 'true'])]")
    assert shown == [[r["id"], "drifted" if r["drift"] else "steady", r["nearest_task"],
                      [[t, v["drift"]] for t, v in r["tasks"].items()]] for r in reports[:10]]
    assert len(shown) == 2 and shown[1][2] == first.name and shown[0][1] == "drifted"  # newest (noise) first
    assert "drifted" in browser.text("#drift-table tr[data-report] td.tasks")
    assert browser.text("#model-drift-alpha") == "0.01"

    # Flips: per row and earlier task, the share its parent answered right and it answers wrong.
    matrix = run.get(f"/v1/models/{run.mas}/evaluation")
    flips = browser.all("#heatmap-table tr[data-version]",
                        "[Number(e.dataset.version), [...e.querySelectorAll('td.flips .flip')]"
                        ".map((f) => [f.dataset.task, f.querySelector('b').innerText])]")
    assert flips == [[row["version"], [[t, f"{v:.3f}"] for t, v in row["negative_flips"].items()]]
                     for row in matrix["rows"]]
    assert flips[0][1] == [] and [t for t, _ in flips[1][1]] == [first.name] and second.name in matrix["tasks"]
    title = browser.evaluate("document.querySelector('#heatmap-table td.flips:not(.flips-none)').title")
    assert "right → wrong" in title and "wrong → right" in title
    browser.screenshot(tmp_path / "drift-and-flips.png")


@needs_chromium
def test_jobs_show_why_a_version_was_kept_and_why_a_job_failed(run: Run, browser: Chromium, tmp_path: Path) -> None:
    browser.open(run.url(model=run.mas))
    browser.shown(run.mas)
    reason = run.kept["result"]["promotion"]["reason"]
    kept = browser.text(f'#model-jobs-table tr[data-job="{run.kept["id"]}"]')
    assert "kept, not promoted" in kept and "candidate" in kept and reason in kept and "dropped by" in kept
    history = browser.all("#alias-history-table tr:not(:first-child)", "[...e.cells].map((c) => c.innerText)")
    assert {(alias, move) for _, alias, move, _, _ in history} == {
        ("candidate", "new → v3"), ("production", "v1 → v2"), ("production", "v0 → v1"), ("production", "new → v0")}
    assert [why for _, alias, _, _, why in history if alias == "candidate"] == [reason]

    browser.click(f'#model-list li[data-model="{run.finetune}"]')
    browser.shown(run.finetune, 2)
    failed = f'#model-jobs-table tr[data-job="{run.failed["id"]}"]'
    assert browser.all(failed, "e.className") == ["failed"]
    assert browser.text(failed + " td.note") == f"conflict: {run.failed['error']['message']}"
    assert len(browser.all("#model-jobs-table tr.succeeded", "1")) == 2
    browser.screenshot(tmp_path / "failed-job.png")


@needs_chromium
def test_two_models_side_by_side(run: Run, browser: Chromium, tmp_path: Path) -> None:
    browser.open(run.url(model=run.mas))
    browser.evaluate(f"""(() => {{ const s = document.getElementById('compare-right');
      s.value = {json.dumps(run.finetune)}; s.dispatchEvent(new Event('change')); }})()""")
    browser.shown(run.mas, 2, compare=run.finetune)
    assert browser.evaluate("location.hash").endswith(f"compare={run.finetune}")
    matrices = {name: run.get(f"/v1/models/{name}/evaluation") for name in (run.mas, run.finetune)}
    metrics = browser.all("#compare-metrics tr[data-metric]",
                          "[e.dataset.metric, e.cells[1].innerText, e.cells[2].innerText]")
    assert metrics == [[key, f"{matrices[run.mas][key]:.4f}", f"{matrices[run.finetune][key]:.4f}"]
                       for key in ("average_accuracy", "forgetting", "bwt")]
    assert browser.all("#compare-metrics th small", "e.innerText") == ["MAS", "fine-tune"]
    for side, name in (("left", run.mas), ("right", run.finetune)):
        values = browser.all(f"#compare-{side}-side td.cell", "Number(e.innerText)")
        assert values == [round(a, 3) for row in matrices[name]["rows"] for a in row["accuracy"].values()]
        assert browser.text(f"#{side}-forgetting") == f"{matrices[name]['forgetting']:.4f}"
        assert browser.text(f"#{side}-bwt") == f"{matrices[name]['bwt']:.4f}"
    browser.screenshot(tmp_path / "side-by-side.png")


@needs_chromium
def test_a_running_job_fits_its_panel_and_the_page_fetched_nothing_from_outside_nor_failed(
        run: Run, api: Api, browser: Chromium, tmp_path: Path) -> None:
    job = api.submit_task(run.finetune, run.tasks[2], method="finetune", epochs=5000, batch_size=8)
    try:
        api.wait_for(lambda: (api.get(f"/v1/jobs/{job['id']}")["progress"] or {}).get("done"), deadline_s=60,
                     what="the job to make progress")
        browser.open(run.url(model=run.mas, version=2, compare=run.finetune))
        browser.shown(run.mas, 2, compare=run.finetune)
        lines = browser.all(f'#job-list .job[data-job="{job["id"]}"] .line',
                            "[e.innerText.replace(/\\s*\\n\\s*/g, ' '), "
                            "e.getBoundingClientRect().height / parseFloat(getComputedStyle(e).lineHeight)]")
        assert [text for text, _ in lines[:2]] == [f"{run.finetune} running", f"train {run.tasks[2].name} · fine-tune"]
        assert re.fullmatch(r"\d+/\d+ steps · \d+% · loss \d+\.\d{3}", lines[2][0]), lines
        assert all(height < 1.5 for _, height in lines), lines  # one line each: nothing wraps
        shot = browser.screenshot(tmp_path / "dashboard.png")
        if os.environ.get("LIFELONG_DASHBOARD_SCREENSHOT"):
            shutil.copyfile(shot, os.environ["LIFELONG_DASHBOARD_SCREENSHOT"])
    finally:
        api.http.post(f"/v1/jobs/{job['id']}/cancel")
        assert api.wait_job(job["id"])["state"] == "cancelled"
    sent = {e["params"]["request"]["url"] for e in browser.events if e.get("method") == "Network.requestWillBeSent"}
    assert sent and all(url.startswith(run.service.url + "/") or url == "about:blank" for url in sent), sent
    errors = [e["params"]["exceptionDetails"] for e in browser.events if e.get("method") == "Runtime.exceptionThrown"]
    assert errors == [], errors


# --- issue 26 item 9: width, deleted aliases, a first task's λ, a missing key, axis labels ------------------


# Pairs of tick labels on one line (their boxes share some height) less than 4 px apart: labels run together.
TICKS_APART = """[...document.querySelectorAll(%s)].map((e) => e.getBoundingClientRect()).flatMap((a, i, all) =>
  all.slice(i + 1).filter((b) => a.top < b.bottom && b.top < a.bottom
    && Math.max(b.left - a.right, a.left - b.right) < 4).map((b) => [a.left, a.right, b.left, b.right]))"""


@needs_chromium
def test_eight_tasks_fit_the_matrix_a_first_task_has_no_lambda_and_axis_labels_keep_apart(
        run: Run, wide: str, browser: Chromium, tmp_path: Path) -> None:
    for model, tasks in ((run.mas, 2), (wide, 8)):
        browser.open(run.url(model=model))
        browser.shown(model)
        assert len(browser.all("#heatmap-table th.task-head", "1")) == tasks
        width = browser.evaluate("(s => [s.scrollWidth, s.clientWidth])(document.querySelector('#heatmap .scroll'))")
        assert width[0] <= width[1], (model, width)  # no scrolling: the whole matrix is in its panel
        right = browser.evaluate("document.querySelector('#heatmap-table').getBoundingClientRect().right")
        assert right <= browser.evaluate("document.querySelector('#matrix').getBoundingClientRect().right")
    methods = browser.all("#heatmap-table tr[data-version] td:nth-child(3)", "e.innerText")
    assert methods == ["MAS"] + ["MAS λ=1"] * 7, methods  # the first task's "auto" chose nothing
    browser.screenshot(tmp_path / "eight-tasks.png")

    browser.click('#heatmap-table tr[data-version="1"] td')
    browser.shown(wide, 1)
    made = dict(browser.all("#made-by tr", "[e.cells[0].innerText, e.cells[1].innerText]"))
    assert made["λ"] == "none: auto on a first task (nothing to protect, no search)", made
    epochs = browser.all("#loss-chart text.tick", "e.textContent")
    assert epochs[-5:] == ["1", "5", "10", "15", "20"], epochs  # 20 epochs: not 1 3 5 … 17 19 20
    for svg in ("#loss-chart", "#omega-hist-svg"):
        assert browser.evaluate(TICKS_APART % json.dumps(svg + " text.tick")) == [], svg
    browser.screenshot(tmp_path / "first-task.png")


@needs_chromium
def test_a_deleted_alias_shows_as_deleted(run: Run, api: Api, browser: Chromium) -> None:
    # staging is deleted and made again; retired is deleted for good, so `GET …/aliases` no longer lists it.
    staging, retired = (f"/v1/models/{run.finetune}/aliases/{alias}" for alias in ("staging", "retired"))
    for response in (api.http.put(staging, json={"version": 1}), api.http.put(retired, json={"version": 1}),
                     api.http.delete(staging), api.http.put(staging, json={"version": 2}), api.http.delete(retired)):
        assert response.status_code in (200, 204), response.text
    assert "retired" not in run.get(f"/v1/models/{run.finetune}")["aliases"]
    browser.open(run.url(model=run.finetune))
    browser.shown(run.finetune)
    history = browser.all("#alias-history-table tr:not(:first-child)", "[...e.cells].map((c) => c.innerText)")
    assert [move for _, alias, move, _, _ in history if alias == "staging"] == ["new → v2", "v1 → deleted", "new → v1"]
    assert [move for _, alias, move, _, _ in history if alias == "retired"] == ["v1 → deleted", "new → v1"]
    # Every alias ever named, each once: what it names now, or deleted and when (no key on this server: by nobody).
    states = dict(browser.all("#alias-states li", "[e.dataset.alias, [e.className, e.innerText]]"))
    assert list(states) == ["production", "retired", "staging"], states
    assert states["production"] == ["", "productionv2"] and states["staging"] == ["", "stagingv2"], states
    deleted_at = run.get(f"/v1/models/{run.finetune}/alias-history?alias=retired&limit=1")[0]["at"]
    when = browser.evaluate(f"new Date({json.dumps(deleted_at)}).toLocaleString()")
    assert states["retired"] == ["deleted", f"retired deleted {when}"], states
    text = browser.text("#alias-history")
    assert "null" not in text and "undefined" not in text


@needs_chromium
def test_a_server_with_keys_asks_for_one_in_every_panel(browser: Chromium,
                                                        tmp_path_factory: pytest.TempPathFactory) -> None:
    var_dir = tmp_path_factory.mktemp("keyed") / "var"
    created = run_cli(var_dir, "keys", "create", "--scope", "read", "--name", "dashboard")
    assert created.returncode == 0, created.stderr
    keyed = Service(var_dir=var_dir, port=free_port())
    keyed.start("api", "api", "--port", str(keyed.port))
    try:
        keyed.wait_healthy()
        browser.navigate(f"{keyed.url}/dashboard")  # another origin: no key kept in its local storage
        browser.wait("document.querySelectorAll('.key-prompt').length === 11", "the key prompt in every panel")
        text = browser.evaluate("document.body.innerText")
        assert "loading…" not in text and text.count("needs an API key: paste a read key") == 11, text
        assert browser.text("#status") == "this server needs an API key"
        browser.evaluate(f"""(k => {{ k.value = {json.dumps(created.stdout.strip())};
          k.dispatchEvent(new Event('change')); }})(document.getElementById('key'))""")
        browser.wait("document.body.dataset.ready === 'true'", "the page to draw with the key")
        assert browser.evaluate("document.querySelectorAll('.key-prompt').length") == 0
        assert browser.text("#model-list") == "no models yet"
    finally:
        keyed.stop()


# --- colours ----------------------------------------------------------------------------------------


def rgb(css: str) -> tuple[int, int, int]:
    r, g, b = (int(float(c)) for c in re.findall(r"[\d.]+", css)[:3])
    return r, g, b


def luminance(color: tuple[int, int, int]) -> float:
    """WCAG relative luminance."""
    channels = [c / 255 for c in color]
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def distance(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    return sum((x - y) ** 2 for x, y in zip(a, b, strict=True)) ** 0.5
