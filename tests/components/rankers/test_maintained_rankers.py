"""The maintained Haystack rerankers of the `rerank` extra against the same local server as HttpReranker.

`HuggingFaceTEIRanker` (huggingface-api-haystack) speaks TEI `/rerank`, `CohereRanker` (cohere-haystack, through the
official Cohere SDK) Cohere `/v2/rerank` at `api_base_url`: both parse the local server's answers, which checks the
server's shapes against real clients too, and both keep the documents' meta.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from haystack import Document
from haystack.core.serialization import component_from_dict, component_to_dict
from haystack.utils import Secret
from haystack_integrations.components.rankers.cohere import CohereRanker
from haystack_integrations.components.rankers.huggingface_api import HuggingFaceTEIRanker

from app.errors import UpstreamBadGatewayError, UpstreamUnavailableError
from app.testing.rerank_server import FakeReranker
from app.upstream import upstream_error

pytestmark = pytest.mark.integration

QUERY = "sqlite write ahead logging"
DOCUMENTS = [
    Document(id="apt", content="Debian apt installs packages.", meta={"file_name": "d.pdf", "page": 7}),
    Document(id="vac", content="SQLite VACUUM rebuilds the file.", meta={"file_name": "s.pdf", "page": 5}),
    Document(id="wal", content="SQLite write ahead logging.", meta={"file_name": "s.pdf", "page": 2}),
]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeReranker]:
    with FakeReranker() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeReranker) -> FakeReranker:
    server.reset()
    return server


def _tei(url: str) -> HuggingFaceTEIRanker:
    return HuggingFaceTEIRanker(url=url, top_k=2, timeout=2, max_retries=1, token=None)


def _cohere(url: str) -> CohereRanker:
    return CohereRanker(model="rerank-test", api_key=Secret.from_token("local-key"), api_base_url=url, top_k=2)


def test_tei_ranker_reorders_as_the_server_scores_and_keeps_meta(fake: FakeReranker) -> None:
    ranked = _tei(fake.url).run(query=QUERY, documents=DOCUMENTS)["documents"]

    assert [(d.id, d.meta["page"]) for d in ranked] == [("wal", 2), ("vac", 5)]
    assert [d.score for d in ranked] == pytest.approx([1.0, 0.25])
    assert fake.paths == ["/rerank"] and fake.requests[0]["texts"] == [d.content for d in DOCUMENTS]


def test_cohere_ranker_reorders_as_the_server_scores_and_keeps_meta(fake: FakeReranker) -> None:
    ranked = _cohere(fake.url).run(query=QUERY, documents=DOCUMENTS)["documents"]

    assert [(d.id, d.meta["page"]) for d in ranked] == [("wal", 2), ("vac", 5)]
    assert [d.score for d in ranked] == pytest.approx([1.0, 0.25])
    assert fake.paths == ["/v2/rerank"]
    assert fake.requests[0]["model"] == "rerank-test" and fake.requests[0]["top_n"] == 2
    assert fake.headers[0]["authorization"] == "Bearer local-key"


def test_both_round_trip_through_their_dicts(fake: FakeReranker) -> None:
    tei = HuggingFaceTEIRanker(url=fake.url, top_k=2)
    cohere = CohereRanker(
        model="m", api_key=Secret.from_env_var("RAG_RERANK_API_KEY", strict=False), api_base_url=fake.url
    )
    for ranker in (tei, cohere):
        data = component_to_dict(ranker, "ranker")
        assert component_to_dict(component_from_dict(type(ranker), copy.deepcopy(data), "ranker"), "ranker") == data


@pytest.mark.parametrize("make", [_tei, _cohere], ids=["tei", "cohere"])
def test_a_5xx_maps_to_an_upstream_error(fake: FakeReranker, make: Callable[[str], Any]) -> None:
    fake.mode = "503"
    with pytest.raises(Exception) as raised:  # each client raises its own class
        make(fake.url).run(query=QUERY, documents=DOCUMENTS)
    assert isinstance(upstream_error(raised.value), UpstreamUnavailableError)

    fake.mode = "500"
    with pytest.raises(Exception) as raised:
        make(fake.url).run(query=QUERY, documents=DOCUMENTS)
    assert isinstance(upstream_error(raised.value), UpstreamBadGatewayError)
