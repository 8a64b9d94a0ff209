"""GPU checks: one short script for a GPU host (fresh checkout, `make install` done), under 5 minutes.

    python -m benchmarks.gpu_checks --device cuda           # writes benchmarks/results/gpu_checks.json
    python -m benchmarks.gpu_checks --device cpu --quick --out /tmp/x

Our CI machines have no GPU, so the CUDA path of the service is otherwise exercised only by
tests/unit/test_cuda.py on a GPU host. This script checks, on the device named, what a GPU worker
does, and prints a plain report with a pass/fail per check:

1. core: a small MLP multi-head network learns two tasks with MAS through `train_task` at the device's
   precision (`precision_for`: bf16 autocast on CUDA); accuracy sane, Ω finite and non-negative, the
   first task's head bit for bit unchanged by the second task.
2. omega: exact per-sample Ω (`estimate_importance`, fp32) of MiniLM and EfficientNet-Lite0 on the
   device against the same network on the CPU, max relative difference per tensor at rtol 1e-3.
   TF32 matmuls and convolutions are switched off for this check (Ampere and Hopper may use TF32 for
   fp32 work, which rounds to 10 mantissa bits and is not what a CPU computes).
3. service: the real API and worker (`python -m app.cli serve`, LIFELONG_WORKER_DEVICE=<device>) learn
   one MiniLM task and one EfficientNet task from raw files over HTTP, then predict class names from
   raw texts and images; the job's state, its recorded `device`, wall time and accuracy are reported.
4. timing: the wall time of each section and of the whole run.

`--device cpu` runs the same code here (tests/benchmarks/test_gpu_checks_cpu.py runs it with
`--quick`, which only shrinks sizes, each section in a run of its own and each service job too,
`--service-jobs`). The exit status is 0 when every check passed, 1 otherwise, and 2 when the device
asked for is not there.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import torch
from torch import Tensor

from app.architectures import build_network, get_architecture
from app.mas.accumulation import total_importance
from app.mas.devices import to_cpu
from app.mas.evaluation import accuracy
from app.mas.importance import estimate_importance, full_float32
from app.mas.learn import MethodChoice, learn_task
from app.mas.networks import build_network as build_array_network
from app.mas.networks import network_state
from app.mas.training import TrainConfig, precision_for
from scripts.cluster import free_port
from scripts.make_examples import COLOURS, EVAL_FRAMES, TRAIN_FRAMES, image_folder_zip, jsonl, png, text_records

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
RTOL = 1e-3
# A tensor whose Ω is below this fraction of the model's largest Ω is numerically zero (attention key
# biases: softmax ignores a shift shared by all keys, so their true gradient is 0 and what is left is
# rounding noise); its differences are measured against this floor instead of its own scale.
ZERO_FLOOR = 1e-6
SIZES = {
    "full": {"core_n": 2048, "core_epochs": 4, "texts": 48, "images": 8, "text_max_length": 32,
             "text_trainable": {"last": 2}, "image_size": 96, "image_trainable": {"last": 2},
             "per_class": 12, "job_epochs": 4},
    "quick": {"core_n": 512, "core_epochs": 3, "texts": 12, "images": 2, "text_max_length": 16,
              "text_trainable": {"last": 1}, "image_size": 64, "image_trainable": "none",
              "per_class": 6, "job_epochs": 3},
}
SECTIONS = ("core", "omega", "service")
JOB_DEADLINE_S = 240.0


def pick_checked_device(name: str) -> torch.device:
    """The device asked for; SystemExit(2) with a plain message when it is not on this machine."""
    try:
        device = torch.device(name)
    except RuntimeError:
        device = torch.device("meta")
    problem = None
    if device.type not in ("cpu", "cuda"):
        problem = f"--device must be cpu or cuda[:N], not {name!r}"
    elif device.type == "cuda" and not torch.cuda.is_available():
        problem = (f"--device {name} asked for, but torch {torch.__version__} sees no CUDA GPU (torch.version.cuda = "
                   f"{torch.version.cuda}); run on a GPU host with a CUDA build of torch, or use --device cpu")
    elif device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        problem = f"--device {name} asked for, but this machine has {torch.cuda.device_count()} GPU(s)"
    if problem is not None:
        print(f"gpu_checks: {problem}", file=sys.stderr)
        raise SystemExit(2)
    return device


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- 1. the core path: two tasks with MAS on the device ------------------------------------------


def _two_task_data(n: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Inputs and two tasks' labels, each a linearly separable function of different features."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, 32, generator=generator)
    return x.to(device), (x[:, 0] + x[:, 1] > 0).long().to(device), (x[:, 2] - x[:, 3] > 0).long().to(device)


def check_core(device: torch.device, sizes: dict[str, Any]) -> dict[str, Any]:
    x, y_a, y_b = _two_task_data(sizes["core_n"], device)
    net = build_array_network({"kind": "mlp", "input_shape": [32], "hidden": [256, 256]}, seed=0).to(device)
    config = TrainConfig(epochs=sizes["core_epochs"], batch_size=64, lr=0.05, momentum=0.9, seed=0,
                         precision=precision_for(device))
    # Both tasks learned as a train job learns them (learn_task): the second anchored with the first's Ω.
    first = learn_task(net, "a", 2, x, y_a, method=MethodChoice(), theta_star={}, omega={}, config=config)
    accuracy_a_before = accuracy(net, "a", x, y_a)
    omega = first.estimate
    head_a = to_cpu({k: v for k, v in network_state(net).items() if k.startswith("heads.a.")})
    second = learn_task(net, "b", 2, x, y_b, method=MethodChoice(), theta_star=network_state(net),
                        omega=total_importance([omega]), config=config, importance=None)
    result = second.training
    head_a_after = to_cpu({k: v for k, v in network_state(net).items() if k.startswith("heads.a.")})
    omega_values = torch.cat([v.flatten() for v in omega.sums.values()])
    checks = {
        "accuracy_a_above_0.9": accuracy_a_before > 0.9,
        "accuracy_a_kept_above_0.8_after_b": accuracy(net, "a", x, y_a) > 0.8,
        "accuracy_b_above_0.9": accuracy(net, "b", x, y_b) > 0.9,
        "loss_finite": bool(torch.isfinite(torch.tensor(result.loss))),
        "omega_finite_and_nonnegative": bool(torch.isfinite(omega_values).all() and (omega_values >= 0).all()),
        "omega_fp32_on_device": all(v.dtype == torch.float32 and v.device.type == device.type
                                    for v in omega.sums.values()),
        "parameters_on_device": all(p.device.type == device.type for p in net.parameters()),
        "head_a_bit_for_bit": all(torch.equal(head_a[k], head_a_after[k]) for k in head_a),
    }
    return {
        "precision": config.precision, "samples": int(x.shape[0]), "steps": result.steps,
        "accuracy_a_after_a": accuracy_a_before, "accuracy_a_after_b": accuracy(net, "a", x, y_a),
        "accuracy_b": accuracy(net, "b", x, y_b), "omega_max": float(omega_values.max()),
        "checks": checks, "passed": all(checks.values()),
    }


# --- 2. Ω on the device against the CPU, fp32 ----------------------------------------------------


def relative_differences(measured: dict[str, Tensor], reference: dict[str, Tensor]) -> dict[str, float]:
    """max|a − b| / max|b| per tensor, with max|b| floored at ZERO_FLOOR × the largest Ω of the model."""
    floor = ZERO_FLOOR * max(float(t.abs().max()) for t in reference.values())
    return {
        name: float((measured[name] - b).abs().max()) / max(float(b.abs().max()), floor, 1e-30)
        for name, b in reference.items()
    }


def omega_inputs(spec: dict, sizes: dict[str, Any]) -> Tensor:
    """A few dozen example sentences, or a few example images, preprocessed as the service would."""
    architecture = get_architecture(spec["kind"])
    if spec["kind"] == "text-encoder":
        records = text_records(["animal", "vehicle", "fruit", "tool"], TRAIN_FRAMES + EVAL_FRAMES)
        return architecture.preprocess(architecture.validate(spec), [r["text"] for r in records[: sizes["texts"]]])
    colours = list(COLOURS)
    raw = [png(COLOURS[colours[i % len(colours)]], seed=i) for i in range(sizes["images"])]
    return architecture.preprocess(architecture.validate(spec), raw)


def compare_omega(spec: dict, device: torch.device, sizes: dict[str, Any]) -> dict[str, Any]:
    net = build_network(spec, seed=0)
    net.add_head("t", 4, seed=0)
    inputs = omega_inputs(spec, sizes)
    on_device = copy.deepcopy(net).to(device)
    started = time.perf_counter()
    reference = estimate_importance(net, "t", inputs).sums
    cpu_s = time.perf_counter() - started
    synchronize(device)
    started = time.perf_counter()
    measured = estimate_importance(on_device, "t", inputs.to(device))
    synchronize(device)
    device_s = time.perf_counter() - started
    differences = relative_differences(to_cpu(measured.sums), reference)
    failing = {name: d for name, d in differences.items() if not d <= RTOL}
    worst = max(differences, key=differences.get)
    return {
        "spec": spec, "samples": int(inputs.shape[0]), "tensors": len(differences),
        "dtype": sorted({str(t.dtype) for t in measured.sums.values()}),
        "fallback": list(measured.fallback), "cpu_s": cpu_s, "device_s": device_s,
        "max_relative_difference": differences[worst], "worst_tensor": worst,
        "failing": failing, "relative_difference": differences, "passed": not failing,
    }


def check_omega(device: torch.device, sizes: dict[str, Any]) -> dict[str, Any]:
    specs = {
        "minilm": {"kind": "text-encoder", "max_length": 32, "trainable": {"last": 2}},
        "efficientnet_lite0": {"kind": "image-backbone", "image_size": 96, "trainable": {"last": 2}},
    }
    with full_float32():  # Ω never uses TF32: the measurement itself turns it off
        cases = {name: compare_omega(spec, device, sizes) for name, spec in specs.items()}
    return {"tf32": "disabled for this check (matmul and cudnn)", "rtol": RTOL, "cases": cases,
            "passed": all(case["passed"] for case in cases.values())}


# --- 3. a real API and worker on the device -------------------------------------------------------


def child_processes(pid: int) -> list[int]:
    """The processes whose parent is `pid` (Linux: read from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:  # after "pid (comm)": state, ppid, …
                found.append(int(stat.parent.name))
    return found


class RunningService:
    """`python -m app.cli serve` over a temporary var dir, its worker on `device`."""

    def __init__(self, root: Path, device: torch.device, settings: dict[str, str] | None = None):
        self.root, self.port = root, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIFELONG_")}
        env.update(LIFELONG_VAR_DIR=str(root / "var"), LIFELONG_WORKER_DEVICE=str(device),
                   LIFELONG_BROKER_POLL_S="0.05", LIFELONG_PROGRESS_INTERVAL_S="0.2", LIFELONG_CANCEL_POLL_S="0.2",
                   PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep))
        env.update(settings or {})
        self.log_path = root / "serve.log"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(self.port)],
                                            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)  # its own process group: close() ends it all

    def wait_healthy(self, deadline_s: float = 120.0) -> None:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the API did not answer /healthz within {deadline_s} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Serve's own shutdown (the API, then the worker), then whatever of its process group is left."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # serve stops the API, then the worker
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
        self._end_group()

    def close(self) -> None:
        """Once the figures are taken: the API and its worker killed at once, rather than the worker's warm
        shutdown (about 6 s on Celery's own timers) that `stop` waits for. What they wrote is committed."""
        self._end_group()

    def _end_group(self) -> None:
        """Kill serve's API and worker (each leads its own process group: serve starts them in sessions of
        their own, so killing serve's group alone left them running, polling the broker for an hour after a
        test suite had finished), then serve itself. Serve is stopped (SIGSTOP) before its children are read:
        a serve still starting its API could otherwise start it after the read, and that API outlived the
        suite (seen once, on a loaded 2-core machine). A child forked but not yet in its own session is still
        in serve's group, and dies with it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGSTOP)
        for child in child_processes(self.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


def _ok(response: httpx.Response, status: int) -> dict[str, Any]:
    if response.status_code != status:
        raise RuntimeError(f"{response.request.method} {response.request.url.path}: {response.status_code} "
                           f"{response.text[:500]}")
    return response.json()


def wait_job(http: httpx.Client, job_id: str) -> dict[str, Any]:
    end = time.monotonic() + JOB_DEADLINE_S
    while time.monotonic() < end:
        job = _ok(http.get(f"/v1/jobs/{job_id}"), 200)
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.1)
    raise RuntimeError(f"job {job_id} did not finish within {JOB_DEADLINE_S} s")


def learn_over_http(http: httpx.Client, architecture: dict, task: str, files: tuple[bytes, bytes, str],
                    epochs: int) -> dict[str, Any]:
    """Create a model, upload its train and eval files, learn one task; the job and the version's accuracy."""
    model = f"gpu-check-{architecture['kind']}"
    _ok(http.post("/v1/models", json={"name": model, "architecture": architecture}), 201)
    train, evaluation, suffix = files
    train_id = _ok(http.post("/v1/datasets", files={"file": (f"train.{suffix}", train)}), 201)["id"]
    eval_id = _ok(http.post("/v1/datasets", files={"file": (f"eval.{suffix}", evaluation)}), 201)["id"]
    started = time.perf_counter()
    submitted = _ok(http.post(f"/v1/models/{model}/tasks", json={
        "task": task, "train": {"dataset": train_id}, "eval": {"dataset": eval_id},
        "epochs": epochs, "batch_size": 8, "lr": 0.05}), 202)
    job = wait_job(http, submitted["id"])
    entry = {"model": model, "job": job["id"], "state": job["state"], "device": job["device"],
             "worker": job["worker"], "wall_s": time.perf_counter() - started, "error": job["error"]}
    if job["state"] == "succeeded":
        version = _ok(http.get(f"/v1/models/{model}/versions/{job['result']['version']}"), 200)
        entry["accuracy"] = version["accuracy"][task]
    return entry


def learn_text(http: httpx.Client, device: torch.device, sizes: dict[str, Any]) -> dict[str, Any]:
    architecture = {"kind": "text-encoder", "max_length": sizes["text_max_length"],
                    "trainable": sizes["text_trainable"]}
    files = (jsonl(text_records(["animal", "vehicle"], TRAIN_FRAMES)),
             jsonl(text_records(["vehicle", "animal"], EVAL_FRAMES)), "jsonl")
    entry = learn_over_http(http, architecture, "living", files, sizes["job_epochs"])
    texts, expected = ["a dog in the garden", "a red sports car"], ["animal", "vehicle"]
    if entry["state"] == "succeeded":
        answer = _ok(http.post(f"/v1/models/{entry['model']}/predict", json={"task": "living", "texts": texts}), 200)
        entry["predicted"] = answer["labels"]
    return _judge_job(entry, device, expected, threshold=0.8)


def learn_images(http: httpx.Client, device: torch.device, sizes: dict[str, Any]) -> dict[str, Any]:
    architecture = {"kind": "image-backbone", "image_size": sizes["image_size"], "trainable": sizes["image_trainable"]}
    per_class = sizes["per_class"]
    files = (image_folder_zip(["red", "yellow"], per_class, 1),
             image_folder_zip(["yellow", "red"], max(2, per_class // 2), 2), "zip")
    entry = learn_over_http(http, architecture, "warm", files, sizes["job_epochs"])
    expected = ["yellow", "red"]
    if entry["state"] == "succeeded":
        raw = [("files", (f"{i}.png", png(COLOURS[c], 90 + i), "image/png")) for i, c in enumerate(expected)]
        answer = _ok(http.post(f"/v1/models/{entry['model']}/predict", params={"task": "warm"}, files=raw), 200)
        entry["predicted"] = answer["labels"]
    return _judge_job(entry, device, expected, threshold=0.7)


def _judge_job(entry: dict[str, Any], device: torch.device, expected: list[str], threshold: float) -> dict[str, Any]:
    entry["expected"] = expected
    entry["checks"] = {
        "succeeded": entry["state"] == "succeeded",
        f"ran_on_{device.type}": (entry["device"] or "").split(":")[0] == device.type,
        f"accuracy_above_{threshold}": entry.get("accuracy", 0.0) > threshold,
        "predicted_class_names": entry.get("predicted") == expected,
    }
    entry["passed"] = all(entry["checks"].values())
    return entry


# The service section's jobs, one per pretrained kind, by the name `--service-jobs` and the results use.
SERVICE_JOBS = {"minilm": learn_text, "efficientnet_lite0": learn_images}


def check_service(device: torch.device, sizes: dict[str, Any],
                  jobs: tuple[str, ...] = tuple(SERVICE_JOBS)) -> dict[str, Any]:
    """The `jobs` asked for (all on a GPU host; the CPU test runs each in a service of its own, in parallel)."""
    with tempfile.TemporaryDirectory(prefix="gpu-checks-") as root:
        service = RunningService(Path(root), device)
        try:
            started = time.perf_counter()
            service.wait_healthy()
            startup_s = time.perf_counter() - started
            with httpx.Client(base_url=service.url, timeout=60.0) as http:
                finished = {name: SERVICE_JOBS[name](http, device, sizes) for name in jobs}
        except Exception as error:  # noqa: BLE001 - a check that cannot run fails with its reason; the others still run
            return {"error": f"{type(error).__name__}: {error}", "log_tail": service.log_tail(), "passed": False}
        finally:
            service.close()
        failed = not all(job["passed"] for job in finished.values())
        return {"startup_s": startup_s, "jobs": finished, "passed": not failed,
                **({"log_tail": service.log_tail()} if failed else {})}


# --- the run and its report ----------------------------------------------------------------------


def run_section(name: str, check: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """One section, timed; an exception is a failed section with its message, not a crashed run."""
    started = time.perf_counter()
    try:
        result = check()
    except Exception as error:  # noqa: BLE001 - a check that cannot run fails with its reason; the others still run
        result = {"error": f"{type(error).__name__}: {error}", "passed": False}
    result["wall_s"] = time.perf_counter() - started
    print(f"[{'PASS' if result['passed'] else 'FAIL'}] {name} ({result['wall_s']:.1f} s)", flush=True)
    return result


def environment(device: torch.device) -> dict[str, Any]:
    found = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
             "device": str(device), "host": platform.node()}
    if device.type == "cuda":
        found["gpu"] = torch.cuda.get_device_name(device)
        found["capability"] = list(torch.cuda.get_device_capability(device))
    return found


def report_lines(results: dict[str, Any]) -> list[str]:
    verdict = "PASS" if results["passed"] else "FAIL"
    lines = [f"gpu_checks on {results['environment']['device']} ({results['profile']}): {verdict} "
             f"in {results['wall_s']:.1f} s", json.dumps(results["environment"])]
    sections = results["sections"]
    if core := sections.get("core"):
        lines.append(f"core: precision {core.get('precision')}, acc a {core.get('accuracy_a_after_a', 0):.3f} → "
                     f"{core.get('accuracy_a_after_b', 0):.3f} after b, acc b {core.get('accuracy_b', 0):.3f}, "
                     f"checks {core.get('checks', core.get('error'))}")
    for name, case in sections.get("omega", {}).get("cases", {}).items():
        lines.append(f"omega {name}: {case['tensors']} tensors, max rel diff {case['max_relative_difference']:.2e} "
                     f"({case['worst_tensor']}), cpu {case['cpu_s']:.2f} s, device {case['device_s']:.2f} s, "
                     f"{'pass' if case['passed'] else 'FAIL ' + str(case['failing'])}")
    if omega := sections.get("omega"):
        error = f"; {omega['error']}" if "error" in omega else ""
        lines.append(f"omega: TF32 {omega.get('tf32', '')}; rtol {RTOL}{error}")
    service = sections.get("service", {})
    if "startup_s" in service:
        lines.append(f"service: API and worker answered /healthz after {service['startup_s']:.1f} s")
    for name, job in service.get("jobs", {}).items():
        lines.append(f"service {name}: job {job['state']} on device {job['device']} in {job['wall_s']:.1f} s, "
                     f"accuracy {job.get('accuracy')}, predicted {job.get('predicted')} (expected {job['expected']})")
    if "error" in service:
        lines.append(f"service: {service['error']}")
    lines.append("timing: " + ", ".join(f"{n} {s['wall_s']:.1f} s" for n, s in sections.items())
                 + f", total {results['wall_s']:.1f} s")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu [cuda]")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"folder for gpu_checks.json [{RESULTS}]")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (the CPU test's profile)")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of {', '.join(SECTIONS)}")
    parser.add_argument("--service-jobs", default=",".join(SERVICE_JOBS),
                        help=f"the service section's jobs, comma-separated, of {', '.join(SERVICE_JOBS)} [all]")
    args = parser.parse_args(argv)
    chosen = [s for s in args.sections.split(",") if s]
    if not chosen or set(chosen) - set(SECTIONS):
        parser.error(f"--sections must be some of {', '.join(SECTIONS)}")
    service_jobs = tuple(j for j in args.service_jobs.split(",") if j)
    if not service_jobs or set(service_jobs) - set(SERVICE_JOBS):
        parser.error(f"--service-jobs must be some of {', '.join(SERVICE_JOBS)}")
    device = pick_checked_device(args.device)
    profile = "quick" if args.quick else "full"
    sizes = SIZES[profile]
    checks = {"core": check_core, "omega": check_omega,
              "service": lambda device, sizes: check_service(device, sizes, service_jobs)}
    started = time.perf_counter()
    sections = {name: run_section(name, lambda check=checks[name]: check(device, sizes)) for name in chosen}
    results = {"profile": profile, "environment": environment(device), "sections": sections,
               "wall_s": time.perf_counter() - started, "passed": all(s["passed"] for s in sections.values())}
    print("\n".join(report_lines(results)))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_checks.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"wrote {args.out / 'gpu_checks.json'}")
    return 0 if results["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
