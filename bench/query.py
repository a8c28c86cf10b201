"""Hybrid retrieval latency (query embedding + full-text + vector + RRF + gate, no LLM) at 10k and 100k chunks.

Usage: .venv/bin/python bench/query.py [--sizes 10000 100000] [--queries 200] [--vector-search-rows N]
       [--listing-collections 220] [--concurrency-limit N]
       [--profile pgvector]   (PostgreSQL from scripts/postgres.sh; PG_CONN_STR defaults to the local rag database)
Chunks are real text (1000-character windows of the R reference manual, Debian r-doc-pdf, so full-text search
sees a real vocabulary) with random unit vectors (embedding 100k chunks would take 40 minutes here); queries are
4 words drawn from random chunks and run through the real query pipeline with generate=false, scoped to one of
four collections. Target: p50 <= 20 ms at 100k chunks. Then `--listing-collections` (220) small collections are added
and `GET /collections`'s service call is timed (one grouped store query on both stores, whatever the number).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

from bench._common import peak_rss_mb, percentile, temp_profile

MANUAL = "/usr/share/R/doc/manual/fullrefman.pdf"


def corpus_text() -> str:
    """The R reference manual's text (2,400+ pages, ~6 M characters)."""
    import pypdfium2

    pdf = pypdfium2.PdfDocument(MANUAL)
    return " ".join(" ".join(pdf[i].get_textpage().get_text_range().split()) for i in range(len(pdf)))


def fill(store, n: int, rng: np.random.Generator, text: str, collections: int = 4) -> None:
    from haystack import Document

    batch = 5000
    stride = max(1, (len(text) - 1000) // n)
    for start in range(0, n, batch):
        docs = []
        vectors = rng.standard_normal((min(batch, n - start), 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        for i, vector in enumerate(vectors):
            k = start + i
            chunk = text[k * stride : k * stride + 1000]
            meta = {
                "collection": f"c{k % collections}",
                "document_id": f"d{k // 50}",
                "file_name": f"f{k // 50}.pdf",
                "page": k % 300 + 1,
                "chunk_index": k % 50,
            }
            docs.append(Document(id=f"chunk-{k}", content=chunk, embedding=vector.tolist(), meta=meta))
        store.write_documents(docs)


def listing_ms(services, collections: int, runs: int = 20) -> tuple[int, float]:
    """Add `collections` collections of two chunks each, then time listing every collection with its counts."""
    from haystack import Document

    services.pipelines.document_store.write_documents(
        [
            Document(
                id=f"listing-{n}-{c}",
                content=f"listing chunk {c}",
                meta={"collection": f"l{n:04d}", "document_id": f"l{n}"},
            )
            for n in range(collections)
            for c in range(2)
        ]
    )
    listed = services.collections.list()  # warm-up
    latencies = []
    for _ in range(runs):
        t0 = time.perf_counter()
        services.collections.list()
        latencies.append((time.perf_counter() - t0) * 1000)
    return len(listed), percentile(latencies, 50)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--vector-search-rows", type=int, help="override the store's vector_search_rows")
    parser.add_argument("--concurrency-limit", type=int, help="override the query YAML's concurrency_limit")
    parser.add_argument("--profile", default="default", choices=["default", "pgvector"], help="store profile")
    parser.add_argument(
        "--listing-collections", type=int, default=220, help="collections added to time listing (0: skip)"
    )
    args = parser.parse_args()
    os.environ.setdefault("PG_CONN_STR", "postgresql://rag:rag@127.0.0.1:5432/rag")
    table = f"bench_{os.getpid()}"
    rng = np.random.default_rng(7)
    text = corpus_text()
    words = [w for w in text.split() if w.isalpha() and len(w) > 3]

    def edit(data):
        if args.concurrency_limit and "joiner" in data["components"]:  # the query pipeline
            data["concurrency_limit"] = args.concurrency_limit
        for component in data["components"].values():
            store = component["init_parameters"].get("document_store")
            if store and args.vector_search_rows:
                store["init_parameters"]["vector_search_rows"] = args.vector_search_rows
            if store and args.profile == "pgvector":  # a table of its own, dropped at the end
                store["init_parameters"].update(
                    table_name=table, hnsw_index_name=f"{table}_hnsw", keyword_index_name=f"{table}_tsv"
                )

    for size in args.sizes:
        temp_profile(edit_query=edit, edit_indexing=edit, source=args.profile)
        from app.composition import build_services
        from app.settings import Settings

        services = build_services(Settings())
        pipelines = services.pipelines
        store = pipelines.document_store
        started = time.perf_counter()
        if args.profile == "pgvector":
            store.delete_table()  # the previous size's rows
            store.count_documents()  # recreate the table, then drop its HNSW index: building it after the bulk load
            with store._get_pool().connection() as connection:  # is ~10x faster than maintaining it row by row
                connection.execute(f'DROP INDEX IF EXISTS "{store.hnsw_index_name}"')
        fill(store, size, rng, text)
        if args.profile == "pgvector":
            with store._get_pool().connection() as connection:
                connection.execute("SET maintenance_work_mem = '1GB'")
                connection.execute("SET statement_timeout = 0")  # the pool's 30 s limit is for queries
                connection.execute(
                    f'CREATE INDEX "{store.hnsw_index_name}" ON "{store.table_name}" USING hnsw '
                    "(embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
                )
                connection.execute(f'ANALYZE "{store.table_name}"')
        if hasattr(store, "create_indices"):  # LanceDB builds its indexes after loading; pgvector keeps HNSW live
            store.create_indices()
        load_s = time.perf_counter() - started
        service = services.query
        questions = [" ".join(rng.choice(words, size=4)) for _ in range(args.queries)]
        modes = ["any", "all"] if args.profile == "pgvector" else [None]
        for mode in modes:  # pgvector: full-text matching any query term (default) and all of them
            if mode:
                store.keyword_match = mode
            service.ask(questions[0], collection="c1", top_k=5, generate=False)  # warm-up
            latencies, retrieval = [], []
            for question in questions:
                t0 = time.perf_counter()
                result = service.ask(question, collection="c1", top_k=5, generate=False)
                latencies.append((time.perf_counter() - t0) * 1000)
                retrieval.append(result.timings_ms["retrieval"])
                assert len(result.sources) == 5
            setting = f"keyword_match {mode}" if mode else f"vector_search_rows {store.vector_search_rows}"
            setting += f", concurrency_limit {pipelines.query.concurrency_limit}"
            print(
                f"{args.profile}: chunks {size:>7} ({setting}): load+index {load_s:6.1f} s | "
                f"hybrid query p50 {percentile(latencies, 50):6.1f} ms "
                f"p95 {percentile(latencies, 95):6.1f} ms (pipeline stages p50 {percentile(retrieval, 50):.1f} ms) | "
                f"peak RSS {peak_rss_mb():.0f} MiB"
            )
        if args.listing_collections:
            listed, p50 = listing_ms(services, args.listing_collections)
            print(f"{args.profile}: chunks {size:>7}: GET /collections of {listed} collections p50 {p50:6.1f} ms")
        if args.profile == "pgvector" and size == args.sizes[-1]:
            store.delete_table()


if __name__ == "__main__":
    main()
