"""Cluster ingest: files/s and pages/s of one upload spread over 1 and then 2 `rag worker` hosts, and where the time
goes (CPU seconds of each process: API, workers and their indexing processes, PostgreSQL).

Usage: .venv/bin/python bench/cluster_ingest.py [--workers 1 2] [--html 18] [--pdf PATH ...] [--profile pgvector]

Needs PostgreSQL (scripts/postgres.sh; PG_CONN_STR or postgresql://rag:rag@127.0.0.1:5432/rag), redis-server and moto
(the dev extra). Each run gets fresh shared services (app.testing.cluster.shared_services), one `rag serve` host and
N worker hosts, and one async upload of every file (at most RAG_MAX_FILES_PER_UPLOAD, 20); the clock runs from the
upload to the job's end. Run it alone on the machine: it measures CPU contention.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

import httpx

from app.testing.cluster import cluster_api, cluster_worker, shared_services
from app.testing.profiles import tiny_profile
from app.testing.servers import descendants
from bench._common import ROOT

DEFAULT_PDFS = ["/usr/share/R/doc/manual/R-intro.pdf", "/usr/share/R/doc/manual/R-data.pdf"]
PG_DSN = os.environ.get("PG_CONN_STR", "postgresql://rag:rag@127.0.0.1:5432/rag")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _times(pid: int) -> tuple[float, float]:
    """(own, reaped children's) user + system CPU seconds of one process; (0, 0) when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK, (int(fields[13]) + int(fields[14])) / CLK_TCK


def tree_cpu(pid: int) -> float:
    """CPU seconds of a host's process tree: itself, the children it reaped (replaced indexing workers) and the
    children still running."""
    own, reaped = _times(pid)
    return own + reaped + sum(_times(child)[0] for child in descendants(pid))


def postgres_cpu() -> float:
    """CPU seconds of the PostgreSQL server (every process, with the backends of closed connections it reaped)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip().startswith("postgres"):
                    total += sum(_times(int(entry.name)))
            except OSError:
                continue
    return total


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the machine since boot (/proc/stat): busy is all but idle and iowait."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / CLK_TCK, sum(values) / CLK_TCK


def count_pages(files: list[Path]) -> int:
    from pypdf import PdfReader

    return sum(len(PdfReader(path).pages) if path.suffix == ".pdf" else 1 for path in files)


def run(workers: int, files: list[Path], profile: str, root: Path) -> dict[str, object]:
    with ExitStack() as stack:
        shared = stack.enter_context(shared_services(root, PG_DSN, lease_seconds=30))
        headers = {"Authorization": f"Bearer {shared.admin_key}"}
        pipelines = tiny_profile(root / "pipelines", profile=profile)  # its own pgvector table; the LLM is not used
        api = stack.enter_context(cluster_api("api-a", shared, pipelines, root))
        hosts = [stack.enter_context(cluster_worker(f"worker-{n}", shared, pipelines, root)) for n in range(workers)]
        with httpx.Client(base_url=api.url, headers=headers, timeout=600) as client:
            uploads = [("files", (path.name, path.read_bytes())) for path in files]
            busy_before = machine_busy()
            cpu_before = {"api": tree_cpu(api.pid), "postgres": postgres_cpu()}
            cpu_before |= {f"worker-{n}": tree_cpu(host.pid) for n, host in enumerate(hosts)}
            started = time.perf_counter()
            response = client.post(
                "/documents/upload", params={"async": "true"}, data={"collection": "bench"}, files=uploads
            )
            response.raise_for_status()
            job_id = response.json()["job_id"]
            while (job := client.get(f"/jobs/{job_id}").json())["state"] not in ("done", "failed", "cancelled"):
                time.sleep(0.5)
            seconds = time.perf_counter() - started
            busy_after = machine_busy()
            cpu_after = {"api": tree_cpu(api.pid), "postgres": postgres_cpu()}
            cpu_after |= {f"worker-{n}": tree_cpu(host.pid) for n, host in enumerate(hosts)}
        pages = count_pages(files)
        return {
            "workers": workers,
            "state": job["state"],
            "files": len(files),
            "pages": pages,
            "chunks": sum(f.get("chunks", 0) for f in job["files"]),
            "seconds": round(seconds, 1),
            "files_per_s": round(len(files) / seconds, 2),
            "pages_per_s": round(pages / seconds, 2),
            "cpu_seconds": {name: round(cpu_after[name] - cpu_before[name], 1) for name in cpu_after},
            "machine_busy_share": round(
                (busy_after[0] - busy_before[0]) / max(busy_after[1] - busy_before[1], 1e-9), 2
            ),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--html", type=int, default=18, help="SQLite documentation pages (eval/sqlite/corpus)")
    parser.add_argument("--pdf", nargs="*", default=DEFAULT_PDFS)
    parser.add_argument("--profile", default="pgvector")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    html = sorted((ROOT / "eval" / "sqlite" / "corpus").glob("*.html"))[: args.html]
    files = [*html, *(Path(p) for p in args.pdf)]
    results = []
    for workers in args.workers:
        with tempfile.TemporaryDirectory(prefix="rag-cluster-bench-") as root:
            results.append(run(workers, files, args.profile, Path(root)))
        print(json.dumps(results[-1]))
    if len(results) == 2:
        print(f"speed-up {results[1]['files_per_s'] / results[0]['files_per_s']:.2f}x files/s")  # type: ignore[operator]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
