"""Hybrid retrieval latency (query embedding + full-text + vector + RRF + gate, no LLM) at 10k and 100k chunks.

Usage: .venv/bin/python bench/query.py [--sizes 10000 100000] [--queries 200]
Chunks are synthetic (word salad from a real vocabulary, random unit vectors) so 100k chunks load in seconds;
queries run through the real query pipeline with generate=false. Target: p50 <= 20 ms at 100k chunks.
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

WORDS = (
    "model data frame vector matrix regression linear function package install library plot graphics "
    "statistics mean variance factor list array object class method generic formula summary anova "
    "distribution normal random sample test hypothesis value error warning file read write table "
    "character string numeric integer logical index subset apply loop condition environment variable"
).split()


def fill(store, n: int, rng: np.random.Generator, collections: int = 4) -> None:
    from haystack import Document

    batch = 5000
    for start in range(0, n, batch):
        docs = []
        vectors = rng.standard_normal((min(batch, n - start), 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        for i, vector in enumerate(vectors):
            k = start + i
            text = " ".join(rng.choice(WORDS, size=120))
            meta = {
                "collection": f"c{k % collections}",
                "document_id": f"d{k // 50}",
                "file_name": f"f{k // 50}.pdf",
                "page": k % 300 + 1,
                "chunk_index": k % 50,
            }
            docs.append(Document(id=f"chunk-{k}", content=text, embedding=vector.tolist(), meta=meta))
        store.write_documents(docs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    for size in args.sizes:
        temp_profile()
        from app.pipeline_loader import load_pipelines
        from app.services.query import QueryService
        from app.settings import Settings

        settings = Settings()
        settings.export_env()
        pipelines = load_pipelines(settings.pipelines_dir)
        store = pipelines.document_store
        started = time.perf_counter()
        fill(store, size, rng)
        store.create_indices()
        load_s = time.perf_counter() - started
        service = QueryService(pipelines)
        questions = [" ".join(rng.choice(WORDS, size=6)) for _ in range(args.queries)]
        service.ask(questions[0], collection="c1", top_k=5, generate=False)  # warm-up
        latencies, retrieval = [], []
        for question in questions:
            t0 = time.perf_counter()
            result = service.ask(question, collection="c1", top_k=5, generate=False)
            latencies.append((time.perf_counter() - t0) * 1000)
            retrieval.append(result.timings_ms["retrieval"])
            assert len(result.sources) == 5
        print(
            f"chunks {size:>7}: load+index {load_s:6.1f} s | hybrid query p50 {percentile(latencies, 50):6.1f} ms "
            f"p95 {percentile(latencies, 95):6.1f} ms (pipeline stages p50 {percentile(retrieval, 50):.1f} ms) | "
            f"peak RSS {peak_rss_mb():.0f} MiB"
        )


if __name__ == "__main__":
    main()
