import asyncio
import hashlib
import random

import pytest
from haystack import Document, Pipeline
from haystack.components.joiners import DocumentJoiner
from haystack.core.serialization import component_from_dict, component_to_dict

from components.joiners.reciprocal_rank_fusion_joiner import ReciprocalRankFusionJoiner


def _docs(*ids: str) -> list[Document]:
    return [Document(id=doc_id, content=f"passage {doc_id}") for doc_id in ids]


def test_scores_are_haystacks_rrf_scores() -> None:
    rng = random.Random(7)
    pool = _docs(*(f"d{i:02d}" for i in range(30)))
    for _ in range(200):
        lists = [rng.sample(pool, rng.randint(0, 10)) for _ in range(rng.randint(1, 3))]
        expected = DocumentJoiner(join_mode="reciprocal_rank_fusion").run(lists)["documents"]
        fused = ReciprocalRankFusionJoiner().run(lists)["documents"]
        assert {d.id: d.score for d in fused} == {d.id: d.score for d in expected}
        assert [d.score for d in fused] == sorted((d.score for d in fused), reverse=True)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_ties_are_ordered_by_the_texts_hash_whichever_list_came_first() -> None:
    dense, keyword = _docs("dense-only", "both"), _docs("keyword-only", "both")
    by_hash = sorted(["dense-only", "keyword-only"], key=lambda doc_id: _sha(f"passage {doc_id}"))
    for lists in ([dense, keyword], [keyword, dense]):
        fused = ReciprocalRankFusionJoiner().run(lists)["documents"]
        assert [d.id for d in fused] == ["both", *by_hash]
        assert fused[1].score == fused[2].score  # a tie: first in one list each


def test_tied_passages_keep_their_order_under_other_ids() -> None:
    """A chunk id hashes the collection: the same texts under other ids (another collection) tie the same way."""
    texts = [f"text {i}" for i in range(12)]

    def order(collection: str) -> list[str]:  # ids hash the collection, as the service's chunk ids do
        dense = [Document(id=_sha(collection + t), content=t) for t in texts[:6]]
        keyword = [Document(id=_sha(collection + t), content=t) for t in texts[6:]]
        return [d.content for d in ReciprocalRankFusionJoiner(top_k=6).run([dense, keyword])["documents"]]

    assert len({tuple(order(f"collection-{n}")) for n in range(20)}) == 1
    assert set(order("a")) == set(texts[:3] + texts[6:9])  # the cut falls between tied pairs, never inside one


def test_equal_texts_are_ordered_by_id() -> None:
    dense, keyword = [Document(id="b", content="same")], [Document(id="a", content="same")]
    for lists in ([dense, keyword], [keyword, dense]):
        assert [d.id for d in ReciprocalRankFusionJoiner().run(lists)["documents"]] == ["a", "b"]


def test_the_top_k_cut_keeps_the_same_passages_whichever_list_came_first() -> None:
    rng = random.Random(3)
    pool = _docs(*(f"d{i:02d}" for i in range(20)))
    for _ in range(100):
        dense, keyword = rng.sample(pool, 8), rng.sample(pool, 8)
        joiner = ReciprocalRankFusionJoiner(top_k=5)
        first = [d.id for d in joiner.run([dense, keyword])["documents"]]
        assert first == [d.id for d in joiner.run([keyword, dense])["documents"]]
        assert len(first) == 5


def test_a_document_found_twice_is_the_copy_ranked_best() -> None:
    dense = [Document(id="x", content="same", meta={"from": "dense"})]
    keyword = [*_docs("y"), Document(id="x", content="same", meta={"from": "keyword"})]
    for lists in ([dense, keyword], [keyword, dense]):
        (x,) = [d for d in ReciprocalRankFusionJoiner().run(lists)["documents"] if d.id == "x"]
        assert x.meta == {"from": "dense"}


def test_top_k_of_run_overrides_init_and_none_returns_all() -> None:
    lists = [_docs("a", "b", "c"), _docs("d")]
    assert len(ReciprocalRankFusionJoiner(top_k=2).run(lists)["documents"]) == 2
    assert len(ReciprocalRankFusionJoiner(top_k=2).run(lists, top_k=3)["documents"]) == 3
    assert len(ReciprocalRankFusionJoiner().run(lists)["documents"]) == 4
    assert ReciprocalRankFusionJoiner().run([])["documents"] == []


@pytest.mark.parametrize("top_k", [0, -1, True, 2.5, "5"])
def test_invalid_top_k_is_refused(top_k) -> None:
    with pytest.raises(ValueError, match="top_k"):
        ReciprocalRankFusionJoiner(top_k=top_k)
    with pytest.raises(ValueError, match="top_k"):
        ReciprocalRankFusionJoiner().run([_docs("a")], top_k=top_k)


def test_serialization_round_trip() -> None:
    data = component_to_dict(ReciprocalRankFusionJoiner(top_k=5), "joiner")
    assert data == {
        "type": "components.joiners.reciprocal_rank_fusion_joiner.ReciprocalRankFusionJoiner",
        "init_parameters": {"top_k": 5},
    }
    assert component_from_dict(ReciprocalRankFusionJoiner, data, "joiner").top_k == 5


def test_in_a_concurrent_yaml_pipeline_whichever_retriever_sends_which_list() -> None:
    yaml_text = """
components:
  dense:                        # stand-ins for two retrievers: pass their documents on as they are
    type: haystack.components.joiners.document_joiner.DocumentJoiner
    init_parameters: {join_mode: concatenate, sort_by_score: false}
  keyword:
    type: haystack.components.joiners.document_joiner.DocumentJoiner
    init_parameters: {join_mode: concatenate, sort_by_score: false}
  joiner:
    type: components.joiners.reciprocal_rank_fusion_joiner.ReciprocalRankFusionJoiner
    init_parameters: {top_k: 2}
connections:
  - {sender: dense.documents, receiver: joiner.documents}
  - {sender: keyword.documents, receiver: joiner.documents}
"""
    pipe = Pipeline.loads(yaml_text, allowed_modules=["components"])
    first, second = _docs("z", "both"), _docs("m", "both")
    results = [
        asyncio.run(pipe.run_async({"dense": {"documents": a}, "keyword": {"documents": b}}, concurrency_limit=2))
        for a, b in ((first, second), (second, first))
    ]
    assert [[d.id for d in result["joiner"]["documents"]] for result in results] == [["both", "m"], ["both", "m"]]
