"""ContextSelector: the prompt gets the sentences that bear on the question, with every passage's number intact."""

from __future__ import annotations

import pytest
from haystack import Document, Pipeline
from haystack.core.serialization import component_from_dict, component_to_dict

from components.builders.context_budget import estimate_tokens
from components.builders.context_selector import ContextSelector

FILLER = [
    "The installer asks for a keyboard layout before partitioning.",
    "Mirrors are listed by country in the installer menu.",
    "The release notes describe the upgrade from the previous version.",
    "Printing is handled by the CUPS service on most desktops.",
    "Fonts are installed from packages whose names start with fonts-.",
    "The desktop environment can be chosen at the end of the installation.",
]
ANSWER = "To keep a package at its current version, run apt-mark hold followed by the package name."


def _passages() -> list[Document]:
    first = " ".join([*FILLER[:3], ANSWER, *FILLER[3:]])
    return [
        Document(content=" ".join(FILLER), meta={"file_name": "a.pdf", "page": 3}),
        Document(content=first, meta={"file_name": "b.pdf", "page": 9}),
        Document(content=" ".join(reversed(FILLER)), meta={"file_name": "c.pdf", "page": 1}),
    ]


@pytest.fixture(scope="module")
def selector() -> ContextSelector:
    component = ContextSelector(max_tokens=120, neighbours=1)
    component.warm_up()
    return component


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_tokens": 10},
        {"max_tokens": "400"},
        {"neighbours": -1},
        {"keyword_weight": -0.1},
        {"keyword_weight": True},
        {"min_relative_score": 1.5},
        {"chars_per_token": 0},
        {"max_length": 4},
    ],
)
def test_init_rejects_invalid_arguments(kwargs):
    with pytest.raises(ValueError):
        ContextSelector(**kwargs)


def test_init_round_trips():
    data = component_to_dict(ContextSelector(max_tokens=300, neighbours=0, keyword_weight=0.25), "selector")
    assert data["init_parameters"]["max_tokens"] == 300
    assert data["init_parameters"]["keyword_weight"] == 0.25
    assert component_to_dict(component_from_dict(ContextSelector, data, "selector"), "selector") == data


def test_keeps_the_answer_sentence_with_its_neighbours_under_its_passage_number(selector):
    passages = _passages()
    out = selector.run(documents=passages, question="How do I stop apt from upgrading a package?")["documents"]
    assert len(out) == len(passages)  # same passages, same order: [n] names the same one
    assert [d.meta["file_name"] for d in out] == ["a.pdf", "b.pdf", "c.pdf"]
    assert ANSWER in out[1].content
    assert FILLER[2] in out[1].content and FILLER[3] in out[1].content  # the neighbours, in document order
    assert out[1].content.index(FILLER[2]) < out[1].content.index(ANSWER) < out[1].content.index(FILLER[3])
    assert out[1].meta["selected"] is True and out[1].meta["selection_score"] > 0
    assert FILLER[0] not in out[1].content and out[1].content.startswith("… ")
    total = sum(
        estimate_tokens(d.content, selector.chars_per_token) + selector.passage_overhead_tokens
        for d in out
        if d.content
    )
    assert total <= 120
    assert passages[1].content != out[1].content  # the input documents are not changed
    assert ANSWER in passages[1].content and len(passages[1].content) > len(out[1].content)


def test_a_passage_with_nothing_kept_is_emptied_not_dropped(selector):
    out = selector.run(documents=_passages(), question="How do I stop apt from upgrading a package?")["documents"]
    emptied = [d for d in out if not d.content]
    assert emptied and all(d.meta["selected"] is False for d in emptied)


def test_the_rare_question_word_decides_between_similar_sentences():
    passages = [
        Document(content="The xyzzyconf file sets the proxy for the tool. The tool reads its settings at start."),
        Document(content="The proxy of the tool is set in its settings file. Settings are read at start."),
    ]
    with_words = ContextSelector(max_tokens=40, neighbours=0, keyword_weight=1.0)
    out = with_words.run(documents=passages, question="Which file is xyzzyconf?")["documents"]
    assert "xyzzyconf" in out[0].content and out[0].meta["selected"]


def test_the_best_sentence_is_kept_even_over_the_budget():
    long_sentence = "apt-mark hold keeps " + "a very long list of packages, " * 40 + "at their versions."
    out = ContextSelector(max_tokens=32, neighbours=0).run(
        documents=[Document(content=long_sentence)], question="What does apt-mark hold do?"
    )["documents"]
    assert out[0].content.startswith("apt-mark hold keeps")  # its first unit (units are at most 400 characters)
    assert out[0].meta["selected"] is True


def test_uses_the_given_query_embedding(selector):
    passages = _passages()
    embedding = selector._encoder.encode(["How do I stop apt from upgrading a package?"], batch_size=1)[0].tolist()
    given = selector.run(
        documents=passages, question="How do I stop apt from upgrading a package?", query_embedding=embedding
    )["documents"]
    computed = selector.run(documents=passages, question="How do I stop apt from upgrading a package?")["documents"]
    assert [d.content for d in given] == [d.content for d in computed]


def test_no_passages_and_empty_passages_pass_through(selector):
    assert selector.run(documents=[], question="anything")["documents"] == []
    empty = [Document(content="")]
    assert selector.run(documents=empty, question="anything")["documents"] == empty


def test_in_a_yaml_pipeline_between_the_passages_and_the_prompt():
    yaml_text = """
components:
  selector:
    type: components.builders.context_selector.ContextSelector
    init_parameters: {max_tokens: 120}
  prompt_builder:
    type: haystack.components.builders.prompt_builder.PromptBuilder
    init_parameters:
      required_variables: [documents]
      template: "{% for doc in documents %}{% if doc.content %}[{{ loop.index }}] {{ doc.content }}
        {% endif %}{% endfor %}"
connections:
  - {sender: selector.documents, receiver: prompt_builder.documents}
"""
    pipe = Pipeline.loads(yaml_text, allowed_modules=["components"])
    prompt = pipe.run(
        {"selector": {"documents": _passages(), "question": "How do I stop apt from upgrading a package?"}}
    )["prompt_builder"]["prompt"]
    assert "[2] " in prompt and ANSWER in prompt
    assert Pipeline.loads(pipe.dumps(), allowed_modules=["components"]).to_dict() == pipe.to_dict()
