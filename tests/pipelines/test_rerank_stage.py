"""A rerank stage written in pipeline YAML between the hybrid joiner and the relevance gate.

The gate decides on the embedding retriever's cosine scores (`scored_documents`), so the reranker's scores, whatever
their scale, change the order of the passages but not whether the question is answered.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from haystack import Document, Pipeline

from app.pipeline_loader import ALLOWED_MODULES
from app.testing.rerank_server import FakeReranker

pytestmark = pytest.mark.integration

YAML = """
components:
  joiner:
    type: components.joiners.reciprocal_rank_fusion_joiner.ReciprocalRankFusionJoiner
    init_parameters: {top_k: 10}
  ranker:
    type: components.rankers.http_reranker.HttpReranker
    init_parameters: {api: jina, model: jina-reranker-test, url: "URL", top_k: 2, retries: 0}
  gate:
    type: components.routers.relevance_gate.RelevanceGate
    init_parameters: {min_score: 0.3}
connections:
  - {sender: joiner.documents, receiver: ranker.documents}
  - {sender: ranker.documents, receiver: gate.documents}
max_runs_per_component: 100
metadata: {}
"""
QUESTION = "sqlite write ahead logging"
DENSE = [
    Document(id="apt", content="Debian apt installs packages.", score=0.41, meta={"file_name": "d.pdf", "page": 7}),
    Document(id="wal", content="SQLite write ahead logging.", score=0.35, meta={"file_name": "s.pdf", "page": 2}),
]
KEYWORD = [
    Document(id="vac", content="SQLite VACUUM rebuilds the file.", score=3.1, meta={"file_name": "s.pdf", "page": 5}),
    Document(id="apt", content="Debian apt installs packages.", score=2.0, meta={"file_name": "d.pdf", "page": 7}),
]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeReranker]:
    with FakeReranker() as fake:
        yield fake


def _pipeline(url: str) -> Pipeline:
    return Pipeline.loads(YAML.replace("URL", url), allowed_modules=ALLOWED_MODULES)


def _run(pipeline: Pipeline, dense: list[Document]) -> dict[str, Any]:
    return pipeline.run(
        {
            "joiner": {"documents": dense + KEYWORD},  # one variadic input: the two lists, deduplicated
            "ranker": {"query": QUESTION},
            "gate": {"scored_documents": dense},
        }
    )["gate"]


def test_the_gate_gets_the_reranked_passages_and_still_decides_on_dense_scores(server: FakeReranker) -> None:
    server.reset()
    pipeline = _pipeline(server.url)

    relevant = _run(pipeline, DENSE)
    below = _run(pipeline, [replace(d, score=0.1) for d in DENSE])

    assert [d.id for d in relevant["documents"]] == ["wal", "vac"]  # 4/4 and 1/4 of the words; apt 0/4 is dropped
    assert [(d.meta["file_name"], d.meta["page"]) for d in relevant["passages"]] == [("s.pdf", 2), ("s.pdf", 5)]
    assert relevant["relevant"] is True  # best dense cosine 0.41 >= 0.3, though the reranker scored apt 0
    assert below["relevant"] is False and "replies" in below and "documents" not in below
    assert [d.id for d in below["passages"]] == ["wal", "vac"]
    assert len(server.requests[0]["documents"]) == 3, "the three fused candidates were scored"


def test_the_pipeline_round_trips_through_yaml(server: FakeReranker) -> None:
    pipeline = _pipeline(server.url)

    again = Pipeline.loads(pipeline.dumps(), allowed_modules=ALLOWED_MODULES)

    assert again.to_dict() == pipeline.to_dict()
    assert again.get_component("ranker").to_dict()["init_parameters"]["api_key"]["env_vars"] == ["RAG_RERANK_API_KEY"]
