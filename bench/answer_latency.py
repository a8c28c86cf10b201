"""Answer latency with the local LLM: time to the first streamed token and to the full answer, one client.

Usage: .venv/bin/python bench/answer_latency.py [--pipelines DIR] [--set eval/debian-reference/questions.jsonl]
       [--split dev] [--data-dir DIR] [--limit N] [--no-prefix-reuse]
Ingests the set's corpus the way `rag eval` does (same hash-named collection, reused across runs with the same
data dir), warms the pipelines with one question, then asks the split's answerable questions one at a time through
`QueryService.ask` with a streaming callback, as the SSE route does. Prints p50/p95 of the first token, the full
answer and the pipeline components' p50 times (the `llm`'s includes reading the prompt and writing the answer).
Target on 2 cores with the default model: first token p50 <= 2.5 s, full answer p50 <= 5 s. Run nothing else at the
same time: the figures are CPU-bound.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

from bench._common import ROOT, percentile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipelines", type=Path, default=ROOT / "pipelines")
    parser.add_argument("--set", type=Path, default=ROOT / "eval/debian-reference/questions.jsonl")
    parser.add_argument("--split", default="dev", choices=["dev", "test", "all"])
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data/eval")
    parser.add_argument("--limit", type=int)
    parser.add_argument(
        "--no-prefix-reuse",
        action="store_true",
        help="clear the llama.cpp model's evaluated tokens before each question, so no prompt prefix (the system "
        "message) is reused: what prefix caching saves is the difference to a run without it",
    )
    args = parser.parse_args()

    from app.composition import eval_services
    from app.services.evaluation import Evaluator, load_eval_set, select_split
    from app.settings import Settings

    services = eval_services(Settings(), args.pipelines, args.data_dir)
    collection = Evaluator(services).ensure_corpus(args.set.parent / "corpus")
    questions = [q for q in select_split(load_eval_set(args.set), args.split) if q.answerable][: args.limit]
    services.pipelines.query.pipeline.warm_up()
    services.query.ask("What is this document about?", collection=collection)  # loads the model, fills the cache

    first: list[float] = []
    full: list[float] = []
    stages: dict[str, list[float]] = {}
    refused = 0
    llm = services.pipelines.query.pipeline.get_component("llm")
    if args.no_prefix_reuse and not hasattr(getattr(llm, "_model", None), "reset"):
        parser.error("--no-prefix-reuse needs a llama.cpp `llm` (a loaded llama_cpp.Llama)")
    for question in questions:
        if args.no_prefix_reuse:
            llm._model.reset()  # llama-cpp-python's Llama: forget the evaluated tokens (the KV cache is overwritten)
        started = time.perf_counter()
        seen: list[float] = []

        def on_chunk(chunk, seen=seen, started=started) -> None:
            if chunk.content and not seen:
                seen.append(time.perf_counter() - started)

        result = services.query.ask(question.question, collection=collection, streaming_callback=on_chunk)
        elapsed = time.perf_counter() - started
        refused += result.refused
        for name, ms in result.components_ms.items():
            stages.setdefault(name, []).append(ms)
        full.append(elapsed)
        first.append(seen[0] if seen else elapsed)  # a refusal before the LLM: its text is the first token
    print(f"pipelines        {args.pipelines}" + (" (no prompt prefix reused)" if args.no_prefix_reuse else ""))
    print(f"questions        {len(questions)} answerable, split {args.split}, {refused} refused")
    print(f"first token      p50 {percentile(first, 50):.2f} s, p95 {percentile(first, 95):.2f} s")
    print(f"full answer      p50 {percentile(full, 50):.2f} s, p95 {percentile(full, 95):.2f} s")
    slowest = sorted(stages.items(), key=lambda item: -percentile(item[1], 50))
    print("stage p50 (ms)   " + ", ".join(f"{name} {percentile(ms, 50):.0f}" for name, ms in slowest))


if __name__ == "__main__":
    main()
