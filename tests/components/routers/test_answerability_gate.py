"""AnswerabilityGate: several signals decide whether the selected context can answer, before any LLM call."""

from __future__ import annotations

import pytest
from haystack import Document, Pipeline
from haystack.core.serialization import component_from_dict, component_to_dict

from components.routers.answerability_gate import AnswerabilityGate

CONTEXT = [
    Document(content="To keep a package at its version, run apt-mark hold with the package name.", meta={"n": 1}),
    Document(content="Aptitude can also hold packages from its curses interface.", meta={"selection_score": 0.7}),
]


def _scored(score: float) -> list[Document]:
    return [Document(content="x", score=score)]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"weights": {"bm25": 1.0}},
        {"weights": {"dense": "1"}},
        {"threshold": "0.5"},
        {"threshold": True},
        {"refusal": " "},
        {"lexicon": "xx"},
        {"lexicon": ""},
    ],
)
def test_init_rejects_invalid_arguments(kwargs):
    with pytest.raises(ValueError):
        AnswerabilityGate(**kwargs)


def test_lexicon_takes_every_word_list_pyspellchecker_bundles():
    from spellchecker import SpellChecker

    from components.text.lexicon import lexicons

    assert set(lexicons()) == set(SpellChecker.languages()) and "en" in lexicons()
    for language in lexicons():
        assert AnswerabilityGate(lexicon=language).lexicon == language


def test_init_round_trips():
    gate = AnswerabilityGate(weights={"dense": 1.0, "coverage": 0.5}, threshold=0.62, lexicon="en")
    data = component_to_dict(gate, "answerability")
    assert data["init_parameters"]["weights"] == {"dense": 1.0, "coverage": 0.5}
    assert data["init_parameters"]["lexicon"] == "en"
    assert component_to_dict(component_from_dict(AnswerabilityGate, data, "answerability"), "answerability") == data


def test_signals():
    signals = AnswerabilityGate().signals("How do I hold a package with apt-mark?", CONTEXT, _scored(0.55))
    assert signals["dense"] == pytest.approx(0.55)
    assert signals["coverage"] == pytest.approx(1.0)  # hold, package, apt-mark are all in the context
    assert signals["selection"] == pytest.approx(0.7)
    assert signals["known_terms"] == 1.0  # not computed without a weight


KNOWN_TERMS_CANDIDATES = [
    Document(
        content="Tunneling over SSH is described elsewhere; packages are held with apt-mark, see aptmark(8). "
        "Each held package gets a timestamp."
    )
]


@pytest.mark.parametrize(
    ("question", "known"),
    [
        ("How do I hold a package with apt-mark?", 1.0),  # every word is in the passages
        ("How do I hold a package with zypper?", 0.0),  # a name the passages never mention (zy##pp##er)
        ("Which options does version 3.45.0 add?", 0.0),  # digits: specific
        ("How do I hold a package on my notebook?", 1.0),  # an everyday word (one piece) is a paraphrase, not a name
        ("How do I hold a package with podman?", 0.5),  # two pieces: between the two
        ("Which annotation holds a package?", 0.0),  # three pieces: a name, though it is an English word
        ("How do I hold packages while tunnelling?", 1.0),  # a missing word whose stem is there is known
        ("How do I hold packages with aptmarkd?", 0.0),  # a name must occur as such, not by its prefix
        ("Where are the timestamps of held packages?", 1.0),  # a plural whose singular is there
    ],
)
def test_known_terms_flags_specific_names_no_candidate_mentions(question, known):
    gate = AnswerabilityGate(weights={"known_terms": 1.0})
    assert gate.signals(question, CONTEXT, _scored(0.5), KNOWN_TERMS_CANDIDATES)["known_terms"] == known


@pytest.mark.parametrize(
    ("question", "known"),
    [
        ("How do I hold a package with zypper?", 0.0),  # not an English word: a name
        ("How do I hold a package with podman?", 0.0),  # two pieces, but no English word: a name
        ("Which annotation holds a package?", 0.5),  # an English word of three pieces: a paraphrase's word, missing
        ("How do I hold a package while configuring it?", 1.0),  # an English word whose stem (configur) is there
        ("Which options does version 3.45.0 add?", 0.0),  # digits: specific whatever the list says
        ("How do I hold packages with aptmarkd?", 0.0),  # a name must still occur as such
        ("Where are the timestamps of held packages?", 1.0),  # not in the list, but its singular is in the passages
    ],
)
def test_known_terms_with_a_lexicon_tells_english_words_from_names(question, known):
    candidates = [*KNOWN_TERMS_CANDIDATES, Document(content="To configure a hold, edit the file.")]
    gate = AnswerabilityGate(weights={"known_terms": 1.0}, lexicon="en")
    assert gate.signals(question, CONTEXT, _scored(0.5), candidates)["known_terms"] == known


def test_the_lexicon_is_loaded_once_per_language():
    first = AnswerabilityGate(weights={"known_terms": 1.0}, lexicon="en")
    second = AnswerabilityGate(weights={"known_terms": 1.0}, lexicon="en")
    first.warm_up()
    second.warm_up()
    assert first._lexicon is second._lexicon and "annotation" in first._lexicon and "zypper" not in first._lexicon
    unused = AnswerabilityGate(weights={"dense": 1.0}, lexicon="en")
    unused.warm_up()
    assert unused._lexicon is None  # no known_terms weight: nothing to load


def test_a_question_whose_rare_word_is_absent_is_refused_though_the_topic_is_close():
    """Near-topic unanswerable questions (the eval sets' kind): dense similarity is high, the key word is missing."""
    gate = AnswerabilityGate(weights={"dense": 1.0, "coverage": 1.0}, threshold=1.2)
    near = gate.run(
        question="How do I hold a package with nixpkgs overlays?", documents=CONTEXT, scored_documents=_scored(0.6)
    )
    assert "documents" not in near
    assert near["replies"][0].text.startswith("I don't know")
    assert near["replies"][0].meta["refused"] is True
    assert near["answerability"]["answerable"] is False and near["answerability"]["coverage"] < 0.6
    answerable = gate.run(
        question="How do I hold a package with apt-mark?", documents=CONTEXT, scored_documents=_scored(0.6)
    )
    assert answerable["documents"] == CONTEXT and "replies" not in answerable
    assert answerable["answerability"]["answerable"] is True


def test_dense_only_weights_ignore_the_words():
    gate = AnswerabilityGate(weights={"dense": 1.0}, threshold=0.5)
    assert "documents" in gate.run(question="nixpkgs overlays?", documents=CONTEXT, scored_documents=_scored(0.51))
    assert "replies" in gate.run(question="apt-mark hold?", documents=CONTEXT, scored_documents=_scored(0.49))


def test_no_context_is_refused():
    gate = AnswerabilityGate(weights={"dense": 1.0}, threshold=-1.0)
    assert "replies" in gate.run(question="anything", documents=[], scored_documents=_scored(0.9))


def test_in_a_yaml_pipeline_routing_to_a_refusal_branch():
    yaml_text = """
components:
  answerability:
    type: components.routers.answerability_gate.AnswerabilityGate
    init_parameters: {weights: {dense: 1.0, coverage: 1.0}, threshold: 1.2, lexicon: en}
  replies:
    type: haystack.components.joiners.branch.BranchJoiner
    init_parameters:
      type_: list[haystack.dataclasses.chat_message.ChatMessage]
connections:
  - {sender: answerability.replies, receiver: replies.value}
"""
    pipe = Pipeline.loads(yaml_text, allowed_modules=["components"])
    out = pipe.run(
        {
            "answerability": {
                "question": "nixpkgs overlays for apt?",
                "documents": CONTEXT,
                "scored_documents": _scored(0.6),
            }
        }
    )
    assert out["replies"]["value"][0].text.startswith("I don't know")
    out = pipe.run(
        {
            "answerability": {
                "question": "How do I hold a package with apt-mark?",
                "documents": CONTEXT,
                "scored_documents": _scored(0.6),
            }
        }
    )
    assert out["answerability"]["documents"] == CONTEXT and "replies" not in out
