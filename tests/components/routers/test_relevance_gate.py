import pytest
from haystack import Document, Pipeline
from haystack.core.serialization import component_from_dict, component_to_dict

from components.routers.relevance_gate import DEFAULT_REFUSAL, RelevanceGate


def _docs(*scores):
    return [Document(content=f"passage {i}", score=s) for i, s in enumerate(scores)]


def test_init_validates():
    with pytest.raises(ValueError):
        RelevanceGate(min_score=2.0)
    with pytest.raises(ValueError):
        RelevanceGate(refusal="  ")


def test_round_trip():
    gate = RelevanceGate(min_score=0.42, refusal="No idea.")
    data = component_to_dict(gate, "gate")
    assert component_to_dict(component_from_dict(RelevanceGate, data, "gate"), "gate") == data


def test_relevant_passages_go_to_prompt():
    docs = _docs(0.1, 0.2)
    out = RelevanceGate(min_score=0.3).run(documents=docs, scored_documents=_docs(0.55, 0.2))
    assert out["relevant"] is True
    assert out["documents"] == docs
    assert "replies" not in out


def test_irrelevant_passages_produce_refusal_without_documents():
    out = RelevanceGate(min_score=0.3).run(documents=_docs(0.9), scored_documents=_docs(0.29, 0.1))
    assert out["relevant"] is False
    assert "documents" not in out
    assert out["replies"][0].text == DEFAULT_REFUSAL
    assert out["passages"]


def test_no_documents_refuses():
    out = RelevanceGate().run(documents=[])
    assert out["relevant"] is False
    assert "replies" in out


def test_search_only_produces_no_branch():
    out = RelevanceGate().run(documents=_docs(0.8), generate=False)
    assert set(out) == {"passages", "relevant"}


def test_gate_in_yaml_pipeline():
    yaml_text = """
components:
  gate:
    type: components.routers.relevance_gate.RelevanceGate
    init_parameters: {min_score: 0.5}
connections: []
"""
    pipe = Pipeline.loads(yaml_text, allowed_modules=["components"])
    result = pipe.run({"gate": {"documents": _docs(0.4)}})
    assert result["gate"]["relevant"] is False
