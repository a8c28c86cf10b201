"""A reranking server on 127.0.0.1 speaking the three protocols rerankers are deployed with, with injected faults.

`FakeReranker` is a `app.testing.fakes.FakeServer` (same fault plan: `fail_next("503")`, `mode = "hang"`, `reset()`,
recorded `requests`/`paths`/`headers`) answering, with the documented request and response shapes:

- `POST /rerank`: Text Embeddings Inference. `{query, texts, raw_scores?, return_text?}` ->
  `[{index, score, text?}]`, most relevant first.
- `POST /v1/rerank`: Jina (and Cohere v1). `{model, query, documents, top_n?, return_documents?}` ->
  `{model, usage: {total_tokens}, results: [{index, relevance_score, document?: {text}}], id, meta}`.
- `POST /v2/rerank`: Cohere v2. `{model, query, documents, top_n?}` ->
  `{id, results: [{index, relevance_score}], meta: {api_version, billed_units}}`.

Scores are real and deterministic: the share of the query's distinct words (lowercased, `\\w+`) that occur in the
document, so a test knows the order to expect. A request missing `query` or its texts gets 422; another path 404.

Run it by hand to try a pipeline's rerank stage without a model server:
`python -m app.testing.rerank_server --port 8080` (then `RAG_RERANK_URL=http://127.0.0.1:8080`).
"""

from __future__ import annotations

import argparse
import re
import threading
from typing import Any

from app.testing.fakes import FakeServer, Reply

WORD = re.compile(r"\w+")


def overlap_score(query: str, text: str) -> float:
    """The share of the query's distinct words found in `text` (0..1)."""
    wanted = set(WORD.findall(query.lower()))
    if not wanted:
        return 0.0
    return len(wanted & set(WORD.findall(text.lower()))) / len(wanted)


def _texts(documents: Any) -> list[str] | None:
    """The documents as strings (Cohere v1 and Jina also accept `{"text": ...}` objects); None when malformed."""
    if not isinstance(documents, list):
        return None
    texts = [d if isinstance(d, str) else d.get("text") if isinstance(d, dict) else None for d in documents]
    return texts if all(isinstance(t, str) for t in texts) else None  # type: ignore[return-value]


def _ranked(query: str, texts: list[str]) -> list[tuple[int, float]]:
    scored = [(index, overlap_score(query, text)) for index, text in enumerate(texts)]
    return sorted(scored, key=lambda pair: (-pair[1], pair[0]))


class FakeReranker(FakeServer):
    """A TEI-, Jina- and Cohere-compatible reranking server scoring by word overlap (see the module docstring)."""

    protocol_version = "HTTP/1.1"

    def error_reply(self, status: int) -> Reply:
        # one body carrying each protocol's error field: TEI `error`/`error_type`, Cohere `message`, Jina `detail`
        message = f"injected {status}"
        return Reply.json(status, {"error": message, "error_type": "Injected", "message": message, "detail": message})

    def reply(self, path: str, body: dict[str, Any]) -> Reply:
        query = body.get("query")
        if path == "/rerank":
            texts = _texts(body.get("texts"))
        elif path in ("/v1/rerank", "/v2/rerank"):
            texts = _texts(body.get("documents"))
        else:
            return Reply.json(404, {"error": f"no route {path}", "message": "not found", "detail": "Not Found"})
        if not isinstance(query, str) or texts is None:
            return Reply.json(422, {"error": "query and texts/documents are required", "error_type": "Validation"})
        ranked = _ranked(query, texts)
        if path == "/rerank":
            return Reply.json(200, [self._tei_item(index, score, texts, body) for index, score in ranked])
        top_n = body.get("top_n")
        if isinstance(top_n, int) and top_n > 0:
            ranked = ranked[:top_n]
        results: list[dict[str, Any]] = []
        for index, score in ranked:
            result: dict[str, Any] = {"index": index, "relevance_score": score}
            if path == "/v1/rerank" and body.get("return_documents"):
                result["document"] = {"text": texts[index]}
            results.append(result)
        words = len(WORD.findall(query)) + sum(len(WORD.findall(t)) for t in texts)
        meta = {"api_version": {"version": path[2]}, "billed_units": {"search_units": 1}}
        if path == "/v2/rerank":
            return Reply.json(200, {"id": "rerank-fake", "results": results, "meta": meta})
        model = body.get("model", "fake-reranker")
        return Reply.json(
            200,
            {"id": "rerank-fake", "model": model, "usage": {"total_tokens": words}, "results": results, "meta": meta},
        )

    @staticmethod
    def _tei_item(index: int, score: float, texts: list[str], body: dict[str, Any]) -> dict[str, Any]:
        item: dict[str, Any] = {"index": index, "score": score}
        if body.get("return_text"):
            item["text"] = texts[index]
        return item


def main(argv: list[str] | None = None) -> None:
    """Serve `FakeReranker` on 127.0.0.1:`--port` until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    server = FakeReranker()
    server.start(port=args.port)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
