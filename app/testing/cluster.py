"""A cluster on one machine: `rag serve` and `rag worker` processes on hosts of their own, sharing only PostgreSQL,
Redis and an S3-protocol server, as they would on separate machines.

Each process runs in a UTS namespace of its own (`unshare --uts`, as root) with its own hostname (worker and lease
owner ids carry it, so a process cannot recognise another "host"'s pids), and its own data directory (no shared
filesystem: the SQLite files, spool folder and `admin.key` of one are invisible to the others). What they share is
exactly what `SharedServices.env()` names: RAG_STATE_URL, RAG_BLOB_URL (+ the S3 endpoint), RAG_REDIS_URL and the
pgvector store's PG_CONN_STR, with RAG_CLUSTER=true so that any one-host setting refuses to start.

Used by tests/cluster (marker `cluster`) and bench/cluster_ingest.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from app.services.api_keys import new_key
from app.testing.servers import (
    RAG,
    S3_TEST_CREDENTIALS,
    ServerProcess,
    descendants,
    http_ok,
    log_contains,
    pg_schema,
    rag_environment,
    redis_server,
    s3_client,
    s3_server,
    server_process,
)


@dataclass(frozen=True)
class SharedServices:
    """What the hosts of a cluster share: the state database, the store, Redis and the S3 bucket."""

    state_url: str
    pg_conn_str: str
    redis_url: str
    blob_url: str
    s3_endpoint: str
    admin_key: str
    lease_seconds: int = 6

    def env(self) -> dict[str, str]:
        return {
            "RAG_CLUSTER": "true",
            "RAG_STATE_URL": self.state_url,
            "RAG_BLOB_URL": self.blob_url,
            "AWS_ENDPOINT_URL": self.s3_endpoint,
            **S3_TEST_CREDENTIALS,
            "RAG_REDIS_URL": self.redis_url,
            "RAG_JOB_QUEUE": "redis",
            "PG_CONN_STR": self.pg_conn_str,
            "RAG_ADMIN_KEY": self.admin_key,
            "RAG_JOB_LEASE_SECONDS": str(self.lease_seconds),
            "RAG_RATE_LIMIT": "off",
        }


@contextmanager
def shared_services(root: Path, pg_dsn: str, *, lease_seconds: int = 6) -> Iterator[SharedServices]:
    """Fresh shared services for one cluster: a PostgreSQL schema of its own for the state (dropped at exit; the
    pgvector store uses `pg_dsn` itself, with a table of the profile's own), a throwaway Redis, an S3 server with a
    bucket, and the admin key every host starts with (RAG_ADMIN_KEY)."""
    with (
        pg_schema(pg_dsn, prefix="cluster") as state_url,
        redis_server(root / "redis") as redis_url,
        s3_server(root / "s3") as s3,
    ):
        bucket = "cluster"
        s3_client(s3.url).create_bucket(Bucket=bucket)
        yield SharedServices(
            state_url=state_url,
            pg_conn_str=pg_dsn,
            redis_url=redis_url,
            blob_url=f"s3://{bucket}/uploads",
            s3_endpoint=s3.url,
            admin_key=new_key()[1],
            lease_seconds=lease_seconds,
        )


def on_host(hostname: str, argv: list[str]) -> list[str]:
    """`argv` run under `hostname` in a UTS namespace of its own (the process keeps the pid Popen sees)."""
    return ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', hostname, *argv]


@contextmanager
def cluster_api(
    hostname: str, shared: SharedServices, pipelines_dir: Path, root: Path, *, seconds: float = 180
) -> Iterator[ServerProcess]:
    """`rag serve` on host `hostname` with data directory `root/hostname`, ready once `/ready` answers 200."""
    data_dir = root / hostname
    data_dir.mkdir(parents=True, exist_ok=True)
    with server_process(
        lambda port: on_host(hostname, [RAG, "serve", "--host", "127.0.0.1", "--port", str(port)]),
        log=data_dir / "server.log",
        ready=lambda port: http_ok(f"http://127.0.0.1:{port}/ready"),
        env=rag_environment(data_dir, pipelines_dir, shared.env(), auth=True),
        seconds=seconds,
        what=f"rag serve on {hostname}",
    ) as server:
        yield server


@contextmanager
def cluster_worker(
    hostname: str,
    shared: SharedServices,
    pipelines_dir: Path,
    root: Path,
    *,
    metrics_port: int = 0,
    seconds: float = 180,
) -> Iterator[ServerProcess]:
    """`rag worker` on host `hostname` with data directory `root/hostname`, ready once it logs that it listens."""
    data_dir = root / hostname
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "worker.log"
    env = {**shared.env(), "RAG_WORKER_METRICS_PORT": str(metrics_port)}
    with server_process(
        on_host(hostname, [RAG, "worker"]),
        log=log,
        ready=lambda _port: log_contains(log, "Job worker ready"),
        env=rag_environment(data_dir, pipelines_dir, env, auth=True),
        port=metrics_port or None,
        seconds=seconds,
        what=f"rag worker on {hostname}",
    ) as worker:
        yield worker


def kill_host(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a host's process and everything it started (its indexing worker), as a machine that loses power."""
    for pid in [process.pid, *descendants(process.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
    process.wait(timeout=10)
