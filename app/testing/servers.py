"""Real server processes on free 127.0.0.1 ports: start, wait until ready, stop.

`server_process` is the one helper; everything else here is a recipe on top of it: `rag serve` (`rag_server`,
`serve_rag`), `rag worker` (`rag_worker`), llama.cpp's OpenAI-compatible server (`llama_cpp_server`), a throwaway
Redis (`redis_server`), an S3-protocol server (`s3_server`, moto's server mode) and a throwaway PostgreSQL cluster
(`ThrowawayPostgres`). Tests reach them through the
fixtures of `app.testing.plugin`; `bench/` calls them directly.

A process that exits early or is not ready in time raises `ServerNotReady` carrying the end of its log.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

RAG = str(Path(sys.executable).parent / "rag")
PG_BIN = Path("/usr/lib/postgresql/15/bin")
LOG_TAIL_CHARS = 4000


class ServerNotReady(RuntimeError):
    """A server process exited, or did not become ready in time; the message ends with its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log_tail(log: Path, chars: int = LOG_TAIL_CHARS) -> str:
    """The last `chars` characters of a log file ('' when it does not exist)."""
    try:
        return log.read_text(errors="replace")[-chars:]
    except FileNotFoundError:
        return ""


# -- readiness probes: a callable that returns True once the server is ready -----------------------------------------

Probe = Callable[[], bool]


def http_ok(url: str, accept: Callable[[httpx.Response], bool] | None = None) -> Probe:
    """Ready once GET `url` answers 200 (and `accept(response)` is true when given)."""

    def probe() -> bool:
        try:
            response = httpx.get(url, timeout=2, trust_env=False)
        except httpx.TransportError:
            return False
        return response.status_code == 200 and (accept is None or accept(response))

    return probe


def log_contains(log: Path, text: str) -> Probe:
    """Ready once the process log contains `text`."""
    return lambda: text in log_tail(log, chars=1_000_000)


def redis_pong(port: int) -> Probe:
    """Ready once a Redis on 127.0.0.1:`port` answers PING."""

    def probe() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    return probe


# -- the one helper ---------------------------------------------------------------------------------------------------


@dataclass
class ServerProcess:
    """A running server process: its port, base URL (`http://127.0.0.1:<port>`), process and log file."""

    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    new_session: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM (its whole process group when it runs in a session of its own), SIGKILL after `timeout` s."""
        stop(self.proc, timeout=timeout, group=self.new_session)


def stop(proc: subprocess.Popen[bytes], *, timeout: float = 30, group: bool = False) -> None:
    """Terminate a process (or its process group), killing it if it does not stop within `timeout` seconds."""
    if proc.poll() is not None:
        return

    def send(sig: signal.Signals) -> None:
        try:
            if group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
        except ProcessLookupError:
            pass

    send(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        proc.wait(timeout=10)


def wait_until_ready(
    proc: subprocess.Popen[bytes], ready: Probe, log: Path, *, seconds: float = 120, what: str = "server"
) -> None:
    """Poll `ready` until it is true; `ServerNotReady` (with the log) if the process exits or the time runs out."""
    deadline = time.monotonic() + seconds
    while True:
        if proc.poll() is not None:
            raise ServerNotReady(f"{what} exited ({proc.returncode}):\n{log_tail(log)}")
        if ready():
            return
        if time.monotonic() >= deadline:
            raise ServerNotReady(f"{what} not ready in {seconds} s:\n{log_tail(log)}")
        time.sleep(0.3)


@contextmanager
def server_process(
    command: Sequence[str] | Callable[[int], Sequence[str]],
    *,
    log: Path,
    ready: Callable[[int], Probe] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    port: int | None = None,
    seconds: float = 120,
    new_session: bool = False,
    stop_timeout: float = 30,
    what: str | None = None,
) -> Iterator[ServerProcess]:
    """Start `command` (or `command(port)`) with its output in `log`, wait until `ready(port)` holds, stop at exit.

    :param command: the argv, or a function of the port giving it.
    :param log: file receiving stdout and stderr (its folder is created).
    :param ready: readiness probe factory taking the port; `None` means "GET http://127.0.0.1:<port>/ answers 200".
    :param env: the whole environment of the process (default: this process's).
    :param port: the port to hand to `command` and `ready` (default: a free one).
    :param seconds: how long to wait for readiness.
    :param new_session: run in a process group of its own and stop the whole group (for shell-script launchers).
    :param stop_timeout: seconds between SIGTERM and SIGKILL at exit.
    :raises ServerNotReady: the process exited or was not ready in time (it is stopped first).
    """
    port = free_port() if port is None else port
    argv = list(command(port) if callable(command) else command)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
        )
    server = ServerProcess(port=port, proc=proc, log=log, new_session=new_session)
    try:
        probe = ready(port) if ready is not None else http_ok(f"{server.url}/")
        wait_until_ready(proc, probe, log, seconds=seconds, what=what or Path(argv[0]).name)
        yield server
    finally:
        server.stop(timeout=stop_timeout)


@contextmanager
def pg_schema(dsn: str, prefix: str = "t") -> Iterator[str]:
    """A PostgreSQL schema of its own (`<prefix>_<random>`, dropped at exit with everything in it); yields `dsn` with
    that schema first on the search path (then `public`, where pgvector's type lives): a RAG_STATE_URL whose tables
    nothing else sees. This process's state pools are closed before the drop."""
    import psycopg

    from app.postgres import close_pools

    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in dsn else "?"
    try:
        yield f"{dsn}{separator}options=-csearch_path%3D{schema}%2Cpublic"
    finally:
        close_pools()
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


# -- ragstack's own processes -------------------------------------------------------------------------------------


def rag_environment(
    data_dir: Path,
    pipelines_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    *,
    auth: bool = False,
) -> dict[str, str]:
    """This process's environment for a `rag` command on `data_dir` (and `pipelines_dir` when given).

    Without `auth` the server runs in dev mode (no API keys); with it, requests need one (`admin_headers`).
    `env` is applied last."""
    environment = {
        **os.environ,
        "RAG_DATA_DIR": str(data_dir),
        "RAG_DEV_MODE": "false" if auth else "true",
        "RAG_INGEST_WORKER": "true",  # as deployed (the test session turns it off for in-process apps)
    }
    if pipelines_dir is not None:
        environment["RAG_PIPELINES_DIR"] = str(pipelines_dir)
    return {**environment, **(env or {})}


def rag_command(*args: str, env: Mapping[str, str], timeout: float | None = None) -> str:
    """Run a `rag` subcommand to completion; its stdout (stripped). Raises CalledProcessError on failure."""
    completed = subprocess.run([RAG, *args], env=dict(env), check=True, capture_output=True, text=True, timeout=timeout)
    return completed.stdout.strip()


@contextmanager
def rag_server(
    pipelines_dir: Path | None,
    data_dir: Path,
    *,
    env: Mapping[str, str] | None = None,
    log_name: str = "server.log",
    auth: bool = False,
    workers: int | None = None,
    seconds: float = 120,
) -> Iterator[ServerProcess]:
    """A real `rag serve` (uvicorn) on a free 127.0.0.1 port, ready (`/ready` 200); stopped at exit.

    `pipelines_dir=None` keeps whatever `RAG_PIPELINES_DIR`/`RAG_PROFILE` the environment names (or the default)."""
    data_dir.mkdir(parents=True, exist_ok=True)

    def command(port: int) -> list[str]:
        argv = [RAG, "serve", "--host", "127.0.0.1", "--port", str(port)]
        return argv if workers is None else [*argv, "--workers", str(workers)]

    with server_process(
        command,
        log=data_dir / log_name,
        ready=lambda port: http_ok(f"http://127.0.0.1:{port}/ready"),
        env=rag_environment(data_dir, pipelines_dir, env, auth=auth),
        seconds=seconds,
        what="rag serve",
    ) as server:
        yield server


@contextmanager
def serve_rag(
    pipelines_dir: Path, data_dir: Path, *, env: Mapping[str, str] | None = None, auth: bool = False
) -> Iterator[str]:
    """`rag_server`, yielding only its base URL."""
    with rag_server(pipelines_dir, data_dir, env=env, auth=auth) as server:
        yield server.url


@contextmanager
def rag_worker(
    pipelines_dir: Path, data_dir: Path, *, env: Mapping[str, str] | None = None, log_name: str = "worker.log"
) -> Iterator[subprocess.Popen[bytes]]:
    """A `rag worker` process (Redis job queue), ready once it logs that it listens; yields the process."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / log_name
    with server_process(
        [RAG, "worker"],
        log=log,
        ready=lambda _port: log_contains(log, "Job worker ready"),
        env=rag_environment(data_dir, pipelines_dir, env),
        what="rag worker",
    ) as server:
        yield server.proc


# -- third-party servers ------------------------------------------------------------------------------------------


@dataclass
class LlamaServer:
    """llama.cpp's OpenAI-compatible server: its `/v1` base URL and log."""

    base_url: str
    log: Path

    def requests_seen(self) -> int:
        return self.log.read_text().count("POST /v1/chat/completions")


@contextmanager
def llama_cpp_server(
    model: Path, root: Path, *, alias: str = "gpt-4o-mini", n_ctx: int = 4096, n_threads: int = 2
) -> Iterator[LlamaServer]:
    """`python -m llama_cpp.server` serving the GGUF `model` under the model name `alias`."""

    def command(port: int) -> list[str]:
        return [
            sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
            "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", str(n_threads), "--model_alias", alias,
        ]  # fmt: skip

    log = root / "server.log"
    with server_process(
        command,
        log=log,
        ready=lambda port: http_ok(f"http://127.0.0.1:{port}/v1/models"),
        stop_timeout=20,
        what="llama_cpp.server",
    ) as server:
        yield LlamaServer(base_url=f"{server.url}/v1", log=log)


@contextmanager
def redis_server(root: Path) -> Iterator[str]:
    """A throwaway `redis-server` on a free 127.0.0.1 port, no persistence; yields its URL.

    :raises ServerNotReady: redis-server is not installed, or does not answer.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServerNotReady(
            "redis-server is not installed: apt-get install redis-server (scripts/apt-packages-test.txt)"
        )

    def command(port: int) -> list[str]:
        return [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir",
                str(root)]  # fmt: skip

    with server_process(command, log=root / "redis.log", ready=redis_pong, seconds=30, what="redis-server") as server:
        yield f"redis://127.0.0.1:{server.port}/0"


S3_TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextmanager
def s3_server(root: Path, *, env: Mapping[str, str] | None = None) -> Iterator[ServerProcess]:
    """moto's S3-protocol server (`python -m moto.server`) on a free 127.0.0.1 port, in memory; yields the process
    (`.url` is the endpoint for AWS_ENDPOINT_URL, any credentials are accepted: `S3_TEST_CREDENTIALS`). `env` adds
    moto's settings (`INITIAL_NO_AUTH_ACTION_COUNT=0`: credentials are checked, and unknown ones refused)."""

    def command(port: int) -> list[str]:
        return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]

    with server_process(
        command,
        log=root / "moto.log",
        ready=lambda port: http_ok(f"http://127.0.0.1:{port}/moto-api/"),
        env={**os.environ, **S3_TEST_CREDENTIALS, **(env or {})},
        seconds=60,
        stop_timeout=10,
        what="moto.server",
    ) as server:
        yield server


def s3_client(endpoint: str) -> Any:
    """A boto3 S3 client of the S3 server at `endpoint` with the test credentials (for setup and assertions)."""
    import boto3

    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_TEST_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=S3_TEST_CREDENTIALS["AWS_DEFAULT_REGION"],
    )


@dataclass
class S3Bucket:
    """A bucket of its own on an S3 test server: `endpoint` (AWS_ENDPOINT_URL), `bucket`, `blob_url` (RAG_BLOB_URL),
    a boto3 `client` for assertions, and the `server` process when the bucket's server is its own (to stop it)."""

    endpoint: str
    bucket: str
    client: Any
    server: ServerProcess | None = None

    @property
    def blob_url(self) -> str:
        return f"s3://{self.bucket}/spool"

    def keys(self) -> list[str]:
        """Every object key in the bucket, sorted."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", ()))

    @classmethod
    def create(cls, endpoint: str, name: str, server: ServerProcess | None = None) -> S3Bucket:
        client = s3_client(endpoint)
        client.create_bucket(Bucket=name)
        return cls(endpoint=endpoint, bucket=name, client=client, server=server)


@contextmanager
def prometheus_server(binary: str, config: Path, root: Path) -> Iterator[str]:
    """A Prometheus with `config` and its TSDB under `root`, ready (`/-/ready`); yields its base URL."""

    def command(port: int) -> list[str]:
        return [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={root / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=1h",
        ]

    with server_process(
        command,
        log=root / "prometheus.log",
        ready=lambda port: http_ok(f"http://127.0.0.1:{port}/-/ready"),
        seconds=30,
        what="prometheus",
    ) as server:
        yield server.url


def _as_postgres() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


@dataclass
class ThrowawayPostgres:
    """A PostgreSQL 15 cluster of its own (trust auth on 127.0.0.1), to stop and start without touching others."""

    data_dir: Path
    port: int

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            [*_as_postgres(), str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-w", "-t", "60", *args],
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        self._ctl(
            "-o",
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data_dir}",
            "-l",
            str(self.data_dir / "log"),
            "start",
        )

    def stop(self) -> None:
        self._ctl("-m", "fast", "stop")

    @classmethod
    @contextmanager
    def running(cls, data_dir: Path) -> Iterator[ThrowawayPostgres]:
        """initdb a cluster in the empty folder `data_dir`, start it on a free port, stop it at exit.

        pg_ctl daemonizes the server, so it is driven by `start()`/`stop()` rather than `server_process`.
        :raises ServerNotReady: PostgreSQL 15 is not installed.
        """
        if not (PG_BIN / "initdb").exists():
            raise ServerNotReady("PostgreSQL 15 is not installed: run scripts/postgres.sh")
        if os.geteuid() == 0:
            shutil.chown(data_dir, "postgres", "postgres")
        subprocess.run(
            [*_as_postgres(), str(PG_BIN / "initdb"), "-D", str(data_dir), "--auth=trust", "-U", "postgres"],
            check=True,
            capture_output=True,
        )
        cluster = cls(data_dir=data_dir, port=free_port())
        cluster.start()
        try:
            yield cluster
        finally:
            try:
                cluster.stop()
            except subprocess.CalledProcessError:
                pass


def descendants(pid: int) -> list[int]:
    """The pids of every process below `pid` (its children, theirs, ...), from /proc."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the command name may hold spaces and parentheses
        children[ppid].append(int(entry.name))
    found: list[int] = []
    pending = list(children.get(pid, ()))
    while pending:
        current = pending.pop()
        found.append(current)
        pending.extend(children.get(current, ()))
    return found


def rss_mib(pid: int) -> float | None:
    """VmRSS of one process in MiB; None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def tree_rss_mib(pid: int) -> float | None:
    """VmRSS of `pid` and all its descendants (uvicorn workers, the indexing worker, parsers), in MiB; None once the
    process is gone."""
    own = rss_mib(pid)
    if own is None:
        return None
    return own + sum(rss or 0.0 for rss in map(rss_mib, descendants(pid)))
