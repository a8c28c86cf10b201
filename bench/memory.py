"""Memory reproducers: which part of ingestion keeps native memory in the server process.

Usage: .venv/bin/python bench/memory.py [--case NAME ...] [--files 600] [--threads 6] [--json FILE]
Each case runs in a fresh child process (so one case's memory does not count against the next) with the default
profile in a temporary data dir, and reports the process's RSS (MiB) after warm-up, at every tenth of the run and at
the end, then again after `gc.collect()` and after glibc's `malloc_trim(0)` (memory that trimming returns was free
but kept by the allocator, not leaked). Cases:
  - embed:    the indexing pipeline's document embedder alone on 1-6 distinct chunks of 40-1000 characters per call
              (ONNX Runtime + tokenizer; every call has another input shape, as files do);
  - parse:    the converters alone (each in its parser worker process; what this process keeps of the exchange);
  - read:     queries only (BM25 + vector search) in this process while another process writes (`write`): what a
              process that only reads keeps of every table version it sees;
  - write:    the store alone: `write_documents` of 5 distinct chunks with random embeddings per call (LanceDB);
  - count:    as `write`, with the duplicate check the ingest service makes before each file (a filtered count);
  - ingest:   whole small files (the soak's generated TXT/MD/CSV/HTML/PDF) through `IngestService.ingest_bytes`,
              called from a pool of --threads threads as the API's thread pool does;
  - big:      one 4.5 MB text file without separators through the same path, then 20 small files.
Each case runs under two allocator settings: glibc's default (one arena per thread, up to 8 per core) and
`MALLOC_ARENA_MAX=2`; `--variants` chooses.

Variations of the store cases (environment variables of this script, for experiments):
  RAG_MEM_STORE_SET="index_cache_mb=16,metadata_cache_mb=16"  set LanceDB store attributes before it opens
  RAG_MEM_CLEANUP=1         delete old table versions at every compaction (`write`, `count`)
  RAG_MEM_RESET_SESSION=1   drop LanceDB's cache session with the connection at every compaction (`ingest`)
  RAG_MEM_TRIM=1            `malloc_trim(0)` after every file (`ingest`; the service now does it itself)
  RAG_MEM_JEMALLOC_DECAY=1  make Arrow's jemalloc pool (if it is the backend) return memory at once
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CASES = ("embed", "parse", "write", "count", "read", "ingest", "big")
VARIANTS = {"glibc-default": {}, "arena-max-2": {"MALLOC_ARENA_MAX": "2"}}


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def malloc_trim() -> None:
    ctypes.CDLL("libc.so.6").malloc_trim(0)


def _services() -> Any:
    from app.composition import build_services
    from app.settings import Settings

    services = build_services(Settings())
    services.pipelines.indexing.pipeline.warm_up()
    return services


def run_case(case: str, files: int, threads: int) -> dict[str, Any]:
    from haystack import Document

    from bench.soak import _paragraphs, make_file

    rng = random.Random(7)
    services = _services()
    timeline: list[tuple[int, float]] = []
    gc.collect()
    start = rss_mib()
    marks = max(1, files // 10)

    if case == "embed":
        embedder = next(i for n, i in services.pipelines.indexing.pipeline.walk() if n == "embedder")
        for step in range(files):
            docs = [
                Document(content=" ".join(_paragraphs(rng, f"{step}-{j}", 2))[: rng.randint(40, 1000)])
                for j in range(rng.randint(1, 6))
            ]
            embedder.run(documents=docs)
            if step % marks == 0:
                timeline.append((step, rss_mib()))
    elif case == "parse":
        from haystack.dataclasses import ByteStream

        pipeline = services.pipelines.indexing.pipeline
        converters = {n: c for n, c in pipeline.walk() if n.endswith("_converter")}
        by_type = {"text/plain": "text_converter", "text/markdown": "markdown_converter", "text/csv": "csv_converter",
                   "text/html": "html_converter", "application/pdf": "pdf_converter"}  # fmt: skip
        for step in range(files):
            name, data, ctype = make_file(random.Random(step), step, 0.1)
            source = ByteStream(data=data, mime_type=ctype, meta={"file_path": name})
            converters[by_type[ctype]].run(sources=[source])
            if step % marks == 0:
                timeline.append((step, rss_mib()))
    elif case == "read":
        # this process only queries (BM25 + vector, as the query pipeline does) while a second process writes
        store = services.pipelines.document_store
        for assignment in filter(None, os.environ.get("RAG_MEM_STORE_SET", "").split(",")):
            key, _, value = assignment.partition("=")
            setattr(store, key, int(value))
            store._tables.close()
        writer = subprocess.Popen(
            [sys.executable, __file__, "--child", "write", "--files", str(files)],
            env={**os.environ, "RAG_MEM_STORE_SET": ""},
            stdout=subprocess.DEVNULL,
        )
        step = 0
        reset_every = int(os.environ.get("RAG_MEM_READER_RESET", "0"))
        while writer.poll() is None:
            if reset_every and step and step % reset_every == 0:
                store._tables.close()
                gc.collect()
                malloc_trim()
            words = " ".join(_paragraphs(rng, str(step), 1)[0].split()[:8])
            if store.count_documents() > 0:
                store.bm25_retrieval(words, top_k=5)
                store.embedding_retrieval([rng.random() for _ in range(384)], top_k=5)
            if step % 50 == 0:
                timeline.append((step, rss_mib()))
            step += 1
            time.sleep(0.05)
    elif case in ("write", "count"):
        store = services.pipelines.document_store
        import pyarrow as pa

        for assignment in filter(None, os.environ.get("RAG_MEM_STORE_SET", "").split(",")):
            key, _, value = assignment.partition("=")
            setattr(store, key, int(value))
            store._tables.close()
        if os.environ.get("RAG_MEM_CLEANUP"):
            from datetime import timedelta

            from components.stores.lancedb.indexes import TableIndexes

            original_compact = TableIndexes.compact

            def compact_and_clean(indexes: TableIndexes, table: Any) -> None:  # every table's, however often reopened
                original_compact(indexes, table)
                table.optimize(cleanup_older_than=timedelta(seconds=0), delete_unverified=True)

            TableIndexes.compact = compact_and_clean  # type: ignore[method-assign]
        if os.environ.get("RAG_MEM_JEMALLOC_DECAY"):
            pa.jemalloc_set_decay_ms(0)
        for step in range(files):
            docs = [
                Document(
                    content=" ".join(_paragraphs(rng, f"{step}-{j}", 2))[:1000],
                    embedding=[rng.random() for _ in range(384)],
                    meta={"collection": "mem", "document_id": f"d{step}", "file_name": f"f{step}.txt"},
                )
                for j in range(5)
            ]
            if case == "count":
                store.count_documents_by_filter(
                    {"operator": "AND", "conditions": [
                        {"field": "meta.collection", "operator": "==", "value": "mem"},
                        {"field": "meta.document_id", "operator": "==", "value": f"d{step}"},
                    ]}
                )  # fmt: skip
            store.write_documents(docs)
            if step % marks == 0:
                timeline.append((step, rss_mib(), round(pa.total_allocated_bytes() / 2**20, 1)))
    elif case in ("ingest", "big"):
        ingest = services.ingest
        if case == "big":
            block = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(65_536))  # as the security test
            blob = (block * 69).encode()[:4_500_000]
            before_big = rss_mib()
            result = ingest.ingest_bytes(blob, "no-separators.txt", collection="mem")
            print(
                json.dumps({"big_file": result.status, "chunks": result.chunks, "error": result.error}), file=sys.stderr
            )
            timeline.append((0, before_big))
            timeline.append((1, rss_mib()))
            gc.collect()
            timeline.append((2, rss_mib()))
            files = 20
            marks = 5
            del result, blob

        store = services.pipelines.document_store
        if os.environ.get("RAG_MEM_RESET_SESSION"):
            original = store._optimize

            def optimize_and_reset(names: set[str] | None) -> None:  # the store's automatic compaction
                original(names)
                store._tables.session = None

            store._optimize = optimize_and_reset
        for assignment in filter(None, os.environ.get("RAG_MEM_STORE_SET", "").split(",")):
            key, _, value = assignment.partition("=")
            setattr(store, key, int(value))
            store._tables.close()
        trim = bool(os.environ.get("RAG_MEM_TRIM"))

        def one(step: int) -> None:
            name, data, ctype = make_file(random.Random(step), step, 0.1)
            ingest.ingest_bytes(data, name, collection="mem", content_type=ctype)
            if trim:
                malloc_trim()

        with ThreadPoolExecutor(max_workers=threads) as pool:
            for step, _ in enumerate(pool.map(one, range(files))):
                if step % marks == 0:
                    timeline.append((step, rss_mib()))
    else:
        raise ValueError(case)
    end = rss_mib()
    gc.collect()
    after_gc = rss_mib()
    malloc_trim()
    after_trim = rss_mib()
    return {
        "case": case,
        "start": round(start, 1),
        "end": round(end, 1),
        "after_gc": round(after_gc, 1),
        "after_trim": round(after_trim, 1),
        "growth": round(end - start, 1),
        "kept_after_trim": round(after_trim - start, 1),
        "timeline": [(t[0], round(t[1], 1), *t[2:]) for t in timeline],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", action="append", choices=CASES)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--files", type=int, default=600)
    parser.add_argument("--threads", type=int, default=6)
    parser.add_argument("--json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_case(args.child, args.files, args.threads)))
        return
    results = []
    for case in args.case or CASES:
        for variant in args.variants.split(","):
            with tempfile.TemporaryDirectory(prefix="rag-mem-") as data_dir:
                env = {**os.environ, **VARIANTS[variant], "RAG_DATA_DIR": data_dir, "RAG_LOG_LEVEL": "WARNING"}
                started = time.perf_counter()
                out = subprocess.run(
                    [sys.executable, __file__, "--child", case, "--files", str(args.files), "--threads",
                     str(args.threads)],
                    env=env, capture_output=True, text=True, check=False,
                )  # fmt: skip
                for line in out.stderr.splitlines():
                    if line.startswith('{"big_file"'):
                        print(f"        {line}")
                if out.returncode != 0:
                    print(f"{case} / {variant}: failed\n{out.stderr[-3000:]}")
                    continue
                result = json.loads(out.stdout.strip().splitlines()[-1])
                result.update(variant=variant, seconds=round(time.perf_counter() - started, 1))
                results.append(result)
                print(
                    f"{case:7} {variant:14} start {result['start']:7.1f}  end {result['end']:7.1f}  "
                    f"after gc {result['after_gc']:7.1f}  after malloc_trim {result['after_trim']:7.1f}  "
                    f"growth {result['growth']:+7.1f}  kept {result['kept_after_trim']:+7.1f} MiB  "
                    f"({result['seconds']} s)",
                    flush=True,
                )
                print(f"        timeline {result['timeline']}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
