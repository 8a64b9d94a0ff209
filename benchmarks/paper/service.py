"""One sequence per modality end to end through the service, against the in-process run of the same seed.

A real API and a real worker (tests/conftest.py's launcher: two processes over a temporary SQLite file,
file broker and blob directory) learn the first tasks of a backbone's mixed_8 sequence on the whole
pretrained network: the raw data go up as files (images as a .zip of PNGs with a labels.csv that keeps
the benchmark's row order, definitions as .jsonl), one train job per task builds on the previous
version (`base_version`, promotion "auto"), with MAS at the λ the benchmark chose, no held-back rows
(`validation_fraction` 0, as the in-process fixed-λ run) and the benchmark's epochs, batch size, lr and
seed. Each version's accuracy on every task's eval set is a row of the service's accuracy matrix;
the in-process run of the same variant and seed trained the tail on cached activations, with the same
`learn_task`. The difference of the two matrices is reported entry by entry (max |Δ|), in accuracy
and in eval samples.
"""

from __future__ import annotations

import csv
import io
import json
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from benchmarks.paper.backbones import Prepared
from benchmarks.paper.sequences import TaskRows

JOB_DEADLINE_S = 1800.0


def image_archive(images: np.ndarray, labels: np.ndarray, classes: tuple[str, ...]) -> bytes:
    """A .zip of 8-bit grey PNGs and a labels.csv listing them in row order, labels as class names."""
    buffer, listing = io.BytesIO(), io.StringIO()
    writer = csv.writer(listing)
    writer.writerow(["file", "label"])
    with zipfile.ZipFile(buffer, "w") as archive:
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            png = io.BytesIO()
            Image.fromarray(image).save(png, format="PNG")
            archive.writestr(f"{i:06d}.png", png.getvalue())
            writer.writerow([f"{i:06d}.png", classes[label]])
        archive.writestr("labels.csv", listing.getvalue())
    return buffer.getvalue()


def text_lines(texts: list[str], labels: np.ndarray, classes: tuple[str, ...]) -> bytes:
    lines = [json.dumps({"text": t, "label": classes[y]}) + "\n" for t, y in zip(texts, labels, strict=True)]
    return "".join(lines).encode()


def _upload(http: Any, rows: TaskRows, side: str, modality: str) -> str:
    x, y = (rows.train, rows.y_train) if side == "train" else (rows.eval, rows.y_eval)
    if modality == "image":
        content, filename = image_archive(np.asarray(x), y, rows.classes), f"{rows.name}-{side}.zip"
    else:
        content, filename = text_lines(list(x), y, rows.classes), f"{rows.name}-{side}.jsonl"
    response = http.post("/v1/datasets", files={"file": (filename, content)})
    response.raise_for_status()
    return response.json()["id"]


def _wait(http: Any, job_id: str) -> dict:
    from tests.conftest import wait_for

    def finished() -> dict | None:
        row = http.get(f"/v1/jobs/{job_id}").json()
        return row if row["state"] in ("succeeded", "failed", "cancelled") else None

    row = wait_for(finished, deadline_s=JOB_DEADLINE_S, what=f"job {job_id}", every_s=0.2)
    if row["state"] != "succeeded":
        raise RuntimeError(f"job {job_id} ended {row['state']}: {row.get('error')}")
    return row


def learn_through_service(prepared: Prepared, tasks: list[str], *, lam: float, seed: int, train: dict,
                          root: Path) -> dict[str, Any]:
    """The accuracy matrix the service reports for `tasks` learned in order with MAS at λ."""
    from tests.conftest import start_service

    env = {"LIFELONG_MAX_UPLOAD_BYTES": str(256 << 20), "LIFELONG_BROKER_POLL_S": "0.1",
           "LIFELONG_PROGRESS_INTERVAL_S": "1", "LIFELONG_CANCEL_POLL_S": "1"}
    started = time.perf_counter()
    service = start_service(root / f"var-{prepared.name}", env=env)
    name = f"paper-{prepared.name}"
    matrix, seconds = [], []
    try:
        with service.client() as http:
            http.timeout = 300.0
            created = http.post("/v1/models", json={"name": name, "architecture": prepared.architecture,
                                                    "seed": 0, "promotion": {"policy": "auto"}})
            created.raise_for_status()
            version = 0
            for index, task in enumerate(tasks):
                task_started = time.perf_counter()
                rows = prepared.rows[task]
                body = {"task": task, "train": {"dataset": _upload(http, rows, "train", prepared.modality)},
                        "eval": {"dataset": _upload(http, rows, "eval", prepared.modality)},
                        "base_version": version, "method": "mas", "lambda": lam, "validation_fraction": 0.0,
                        "optimizer": "sgd", "momentum": 0.9, "seed": seed, "checkpoint_interval_s": 3600.0,
                        **{k: train[k] for k in ("epochs", "batch_size", "lr")}}
                response = http.post(f"/v1/models/{name}/tasks", json=body)
                if response.status_code != 202:
                    raise RuntimeError(f"the service refused task {task}: {response.status_code} {response.text}")
                version = _wait(http, response.json()["id"])["result"]["version"]
                accuracy = http.get(f"/v1/models/{name}/versions/{version}").json()["accuracy"]
                matrix.append({t: accuracy[t] for t in tasks[: index + 1]})
                seconds.append(time.perf_counter() - task_started)
    finally:
        service.close()  # the figures are taken: no warm worker shutdown to wait for (tests/conftest.py)
    return {"tasks": tasks, "matrix": matrix, "seconds": seconds, "wall": time.perf_counter() - started}


def compare(service: dict, in_process: dict, eval_sizes: dict[str, int]) -> dict[str, Any]:
    """Entry-by-entry difference of two accuracy matrices over the service's rows."""
    rows = zip(service["matrix"], in_process["matrix"], strict=False)
    differences = [(abs(row[t] - mine[t]), t) for row, mine in rows for t in row]
    largest, task = max(differences) if differences else (0.0, None)
    return {"max_abs_difference": largest,
            "max_difference_in_samples": round(largest * eval_sizes[task]) if task else 0,
            "entries": len(differences), "equal_entries": sum(d == 0 for d, _ in differences),
            "in_process_matrix": in_process["matrix"][: len(service["matrix"])]}
