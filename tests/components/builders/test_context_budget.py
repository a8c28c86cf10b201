"""ContextBudget: the passages of a prompt fit the token budget, as a prefix (so [n] keeps naming the same passage)."""

from __future__ import annotations

import pytest
from haystack import Document, Pipeline
from haystack.core.serialization import component_from_dict, component_to_dict

from components.builders.context_budget import ContextBudget, estimate_tokens


def _docs(count: int, chars: int) -> list[Document]:
    return [Document(content=("word " * chars)[:chars], meta={"file_name": f"f{i}.txt"}) for i in range(count)]


def _cost(budget: ContextBudget, docs: list[Document]) -> int:
    return sum(budget.passage_overhead_tokens + estimate_tokens(d.content or "", budget.chars_per_token) for d in docs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_context_tokens": 0},
        {"max_context_tokens": "many"},
        {"max_context_tokens": "${RAG_CONTEXT_TOKENS:-zero}"},
        {"chars_per_token": 0},
        {"passage_overhead_tokens": -1},
        {"min_passage_tokens": 0},
    ],
)
def test_init_rejects_invalid_arguments(kwargs):
    with pytest.raises(ValueError):
        ContextBudget(**kwargs)


def test_init_round_trips_with_an_env_reference(monkeypatch):
    component = ContextBudget(max_context_tokens="${RAG_CONTEXT_TOKENS:-2400}", min_passage_tokens=10)
    data = component_to_dict(component, "budget")
    assert data["init_parameters"]["max_context_tokens"] == "${RAG_CONTEXT_TOKENS:-2400}"
    assert component_to_dict(component_from_dict(ContextBudget, data, "budget"), "budget") == data
    monkeypatch.setenv("RAG_CONTEXT_TOKENS", "300")
    assert _cost(component, component.run(documents=_docs(50, 1000))["documents"]) <= 300


def test_estimate_counts_digits_as_tokens_and_is_cautious_for_text():
    assert estimate_tokens("", 3.5) == 0
    assert estimate_tokens("1234567890", 3.5) == 10  # Qwen splits numbers into digits
    assert estimate_tokens("a" * 35, 3.5) == 10
    assert estimate_tokens("日本語", 3.5) == 3  # 9 UTF-8 bytes


def test_passages_that_fit_pass_through_unchanged():
    docs = _docs(5, 200)
    assert ContextBudget().run(documents=docs)["documents"] == docs


def test_fifty_long_passages_are_trimmed_to_a_prefix_within_the_budget():
    """Red-team finding 3: top_k=50 passages of 1000 characters no longer exceed the context."""
    budget = ContextBudget(max_context_tokens=2400)
    docs = _docs(50, 1000)
    kept = budget.run(documents=docs)["documents"]
    assert 1 < len(kept) < 50
    assert _cost(budget, kept) <= 2400
    assert [d.meta["file_name"] for d in kept] == [d.meta["file_name"] for d in docs[: len(kept)]]  # numbering kept
    assert all(k.content == d.content for k, d in zip(kept[:-1], docs, strict=False))
    if kept[-1].meta.get("truncated"):
        assert docs[len(kept) - 1].content.startswith(kept[-1].content.removesuffix(" …"))


def test_one_huge_passage_is_cut_never_dropped():
    """A 120 KB chunk stored by an earlier release: the first passage is cut to the budget, never an empty prompt."""
    budget = ContextBudget(max_context_tokens=500)
    huge = Document(content="value: " + "1234567890 " * 12_000)
    kept = budget.run(documents=[huge, *_docs(3, 100)])["documents"]
    assert len(kept) == 1 and kept[0].meta["truncated"] is True
    assert _cost(budget, kept) <= 500
    assert kept[0].content.endswith(" …")


def test_no_passages_and_empty_content_never_raise():
    assert ContextBudget().run(documents=[])["documents"] == []
    empty = [Document(content=None), Document(content="")]
    assert ContextBudget().run(documents=empty)["documents"] == empty


def test_in_yaml_pipeline_before_a_prompt_builder():
    yaml_text = """
components:
  budget:
    type: components.builders.context_budget.ContextBudget
    init_parameters:
      max_context_tokens: "${RAG_CONTEXT_TOKENS_UNSET_IN_TESTS:-600}"
  prompt:
    type: haystack.components.builders.prompt_builder.PromptBuilder
    init_parameters:
      required_variables: [documents]
      template: "{% for doc in documents %}[{{ loop.index }}] {{ doc.content }}\\n{% endfor %}"
connections:
  - {sender: budget.documents, receiver: prompt.documents}
"""
    pipe = Pipeline.loads(yaml_text, allowed_modules=["components", "haystack"])
    out = pipe.run({"budget": {"documents": _docs(50, 1000)}}, include_outputs_from={"budget"})
    kept = out["budget"]["documents"]
    assert 0 < len(kept) < 50
    prompt = out["prompt"]["prompt"]
    assert f"[{len(kept)}]" in prompt and f"[{len(kept) + 1}]" not in prompt
    assert len(prompt) < 600 * 3.5
