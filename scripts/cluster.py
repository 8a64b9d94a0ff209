"""The scaled deployment of docker-compose.yml, run natively on loopback: no Docker engine needed.

PostgreSQL and Redis from the machine's packages, an S3-compatible blob store (moto's server mode),
the API and N worker processes, each a separate process that shares only what separate hosts would
share: the database URL, the broker URL and the blob store URL. The cluster test
(tests/cluster) and the scaling benchmark (benchmarks/scaling.py) start their clusters with it,
and you can start one by hand:

    .venv/bin/python -m scripts.cluster --workers 2      # Ctrl-C stops everything

It prints the API's URL and the environment that points a `lifelong` command at the same cluster.
Every server keeps its data in a temporary directory that is removed when it stops: this is for
trying the topology, not for keeping data (that is docker-compose.yml's job).
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
BUCKET = "lifelong-blobs"
S3_KEY, S3_SECRET = "cluster", "cluster-secret"  # moto accepts any pair; a real store needs real ones


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(
    ready: Callable[[], bool], *, deadline_s: float, what: str, process: subprocess.Popen | None = None
) -> None:
    end = time.monotonic() + deadline_s
    while not ready():
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with {process.returncode}")
        if time.monotonic() > end:
            raise TimeoutError(f"timed out after {deadline_s} s waiting for {what}")
        time.sleep(0.1)


def _accepts_connections(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Server:
    """A started server: its URL, and how to stop it and remove its data."""

    name: str
    url: str
    stop_command: list[str] | None = None
    process: subprocess.Popen | None = None
    data_dir: Path | None = None

    def stop(self) -> None:
        if self.stop_command is not None:
            subprocess.run(self.stop_command, check=False, capture_output=True, timeout=60)
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def postgres_bin(tool: str) -> str:
    """A PostgreSQL server program: Debian keeps them out of PATH, under /usr/lib/postgresql/<major>/bin."""
    found = shutil.which(tool) or max(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"), default=None,
                                      key=lambda path: int(Path(path).parts[-3]))
    if found is None:
        raise FileNotFoundError(f"PostgreSQL's {tool} is not installed (Debian: apt-get install postgresql)")
    return found


def start_postgres(*, user: str = "lifelong", database: str = "lifelong") -> Server:
    """A throwaway PostgreSQL on a free loopback port, trusting local connections, with one database.

    PostgreSQL refuses to run as root, so as root its programs run as the `postgres` user of the
    Debian package, in a directory of its own under /tmp. fsync is off: the data is thrown away.
    """
    port = free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="lifelong-pg-"))
    as_owner: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(data_dir, "postgres", "postgres")
        as_owner = ["runuser", "-u", "postgres", "--"]
    cluster_dir = data_dir / "data"

    def run(*command: str) -> None:
        subprocess.run([*as_owner, *command], check=True, capture_output=True, timeout=120)

    run(postgres_bin("initdb"), "-D", str(cluster_dir), "-A", "trust", "-U", user, "--no-sync", "-E", "UTF8")
    options = f"-p {port} -k {data_dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    pg_ctl = postgres_bin("pg_ctl")
    run(pg_ctl, "-D", str(cluster_dir), "-o", options, "-l", str(data_dir / "postgres.log"), "-w", "start")
    server = Server("postgres", f"postgresql+psycopg://{user}@127.0.0.1:{port}/{database}",
                    stop_command=[*as_owner, pg_ctl, "-D", str(cluster_dir), "-m", "fast", "-w", "stop"],
                    data_dir=data_dir)
    try:
        run(postgres_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", user, database)
    except BaseException:
        server.stop()
        raise
    return server


def start_redis() -> Server:
    port = free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="lifelong-redis-"))
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir), "--save", "",
         "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    server = Server("redis", f"redis://127.0.0.1:{port}/0", process=process, data_dir=data_dir)
    wait_until(lambda: _accepts_connections(port), deadline_s=20, what="redis-server", process=process)
    return server


def start_s3(bucket: str = BUCKET) -> Server:
    """moto's S3-compatible server on a free port, with one empty bucket."""
    port = free_port()
    moto = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
    if moto is None:
        raise FileNotFoundError("moto_server is not installed (pip install 'moto[server]')")
    process = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    server = Server("s3", url, process=process)

    def bucket_made() -> bool:
        try:  # S3's CreateBucket is a PUT on the bucket's path
            return httpx.put(f"{url}/{bucket}", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(bucket_made, deadline_s=30, what="the S3 server", process=process)
    return server


def s3_settings(server: Server, bucket: str = BUCKET, prefix: str = "blobs") -> dict[str, str]:
    """The environment that puts the blob store in the S3 server's bucket."""
    options = f'{{"endpoint_url": "{server.url}", "key": "{S3_KEY}", "secret": "{S3_SECRET}"}}'
    return {"LIFELONG_BLOB_URL": f"s3://{bucket}/{prefix}", "LIFELONG_BLOB_OPTIONS": options}


@dataclass
class Cluster:
    """Servers and service processes started together, stopped together, with one log per process."""

    root: Path
    env: dict[str, str]
    servers: list[Server] = field(default_factory=list)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    api_port: int | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def process_env(self) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("LIFELONG_")}
        return {**inherited, "PYTHONPATH": str(REPO), "LIFELONG_VAR_DIR": str(self.root / "var"), **self.env}

    def log_path(self, name: str) -> Path:
        return self.root / f"{name}.log"

    def spawn(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.log_path(name), "ab")  # noqa: SIM115 - the child keeps it open
        process = subprocess.Popen([sys.executable, "-m", "app.cli", *args], cwd=self.root,
                                   env=self.process_env(), stdout=log, stderr=subprocess.STDOUT)
        self.processes[name] = process
        return process

    def migrate(self) -> None:
        subprocess.run([sys.executable, "-m", "app.cli", "migrate"], cwd=self.root, env=self.process_env(),
                       check=True, capture_output=True, timeout=120)

    def start_api(self) -> None:
        self.api_port = free_port()
        process = self.spawn("api", "api", "--port", str(self.api_port))

        def healthy() -> bool:
            try:
                return httpx.get(f"{self.api_url}/readyz", timeout=2.0).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, deadline_s=120, what="the API to be ready", process=process)

    def start_worker(self, name: str, queues: str = "cpu,gpu") -> None:
        """A worker process named `name@<host>`, taking jobs from `queues`; returns once it consumes."""
        process = self.spawn(name, "worker", "--queues", queues, "--name", f"{name}@%h")

        def ready() -> bool:  # Celery logs "<node name> ready." once it consumes
            lines = self.log_path(name).read_text(errors="replace").splitlines()
            return any(f"{name}@" in line and " ready." in line for line in lines)

        wait_until(ready, deadline_s=180, what=f"worker {name} to be ready", process=process)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for server in reversed(self.servers):
            server.stop()

    def logs(self, tail: int = 4000) -> str:
        return "\n".join(f"--- {name} ---\n{self.log_path(name).read_text(errors='replace')[-tail:]}"
                         for name in self.processes if self.log_path(name).exists())


def start_cluster(root: Path, *, workers: int, queues: str = "cpu,gpu", s3: bool = True,
                  extra_env: dict[str, str] | None = None) -> Cluster:
    """PostgreSQL, Redis, (S3), migrations, the API, and `workers` workers named w1, w2, … on `queues`."""
    root.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(root=root, env=dict(extra_env or {}))
    try:
        postgres, redis = start_postgres(), start_redis()
        cluster.servers += [postgres, redis]
        cluster.env |= {"LIFELONG_DATABASE_URL": postgres.url, "LIFELONG_BROKER_URL": redis.url}
        if s3:
            store = start_s3()
            cluster.servers.append(store)
            cluster.env |= s3_settings(store)
        cluster.migrate()
        cluster.start_api()
        for index in range(1, workers + 1):
            cluster.start_worker(f"w{index}", queues)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="worker processes to start (default 2)")
    parser.add_argument("--dir", type=Path, default=Path("var/cluster"), help="where the logs go")
    parser.add_argument("--no-s3", action="store_true", help="keep blobs in <dir>/var/blobs instead of S3")
    args = parser.parse_args()
    cluster = start_cluster(args.dir.resolve(), workers=args.workers, s3=not args.no_s3)
    print(f"lifelong cluster: API at {cluster.api_url}, {args.workers} worker(s), logs in {args.dir}/")
    print("environment for `lifelong` commands against it:")
    print(f"  export LIFELONG_URL={cluster.api_url}")
    for key, value in cluster.env.items():
        print(f"  export {key}='{value}'")
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # delivered to sigwait, not as KeyboardInterrupt
    try:
        signal.sigwait(stop_signals)
    finally:
        print("lifelong cluster: stopping")
        cluster.stop()


if __name__ == "__main__":
    main()
