import pytest
from haystack import Document, Pipeline
from haystack.core.serialization import component_from_dict, component_to_dict
from haystack.dataclasses import ChatMessage

from components.validators.claim_checker import ClaimChecker, content_words, split_sentences

DOCS = [
    Document(content="Data which is saved will be available in future R sessions."),
    Document(content="Use the R program, terminating with the q() command at the end of the session."),
    Document(content="Plots are written to files with png() and closed with dev.off()."),
]
SUPPORTED = "End the session with the q() command [2]."
UNSUPPORTED = "Bananas grow in tropical climates."
UNCITED = "Saved data is available in future sessions."


def _run(text, documents=DOCS, **init):
    return ClaimChecker(**init).run(replies=[ChatMessage.from_assistant(text)], documents=documents)["replies"][0]


@pytest.mark.parametrize(
    "init",
    [
        {"threshold": 1.5},
        {"threshold": -0.1},
        {"threshold": True},
        {"threshold": "0.5"},
        {"unsupported": "delete"},
        {"refusal": "Sorry."},
        {"refusal_prefix": ""},
        {"min_words": 0},
        {"min_supported_share": 1.1},
    ],
)
def test_init_rejects_bad_arguments(init):
    with pytest.raises(ValueError):
        ClaimChecker(**init)


def test_init_round_trips():
    component = ClaimChecker(threshold=0.7, unsupported="drop", refusal="I don't know.", min_words=2)
    data = component_to_dict(component, "claims")
    restored = component_from_dict(ClaimChecker, data, "claims")
    assert component_to_dict(restored, "claims") == data
    assert restored.unsupported == "drop" and restored.rewrites_answers
    assert not ClaimChecker().rewrites_answers


def test_sentences_split_after_citations_and_keep_the_text_exact():
    text = "Use q() [2]. Data is saved, e.g. in .RData files.\n- Plots use png()! Really? 3.14 is pi\n1. Save it."
    parts = split_sentences(text)
    assert [s for s, _ in parts] == [
        "Use q() [2].",
        "Data is saved, e.g. in .RData files.",
        "- Plots use png()!",
        "Really?",
        "3.14 is pi",
        "1. Save it.",
    ]
    assert "".join(s + sep for s, sep in parts) == text


def test_content_words_keep_numbers_and_identifiers_and_drop_stop_words():
    words = content_words("The q() command is used 42 times with --force in R [1].")
    assert {"q()", "42", "--force", "command"} <= words
    assert not words & {"the", "is", "with", "in", "r", "1"}
    assert content_words("saved sessions") == content_words("save session")


def test_keep_mode_annotates_each_sentence_and_leaves_the_text_alone():
    text = f"{SUPPORTED} {UNSUPPORTED} {UNCITED}"
    reply = _run(text)
    assert reply.text == text
    assert reply.meta["claims"] == [
        {"text": SUPPORTED, "sources": [2], "supported": True, "score": 1.0},
        {"text": UNSUPPORTED, "sources": [1], "supported": False, "score": 0.0},
        {"text": UNCITED, "sources": [1], "supported": True, "score": 1.0},
    ]


def test_a_sentence_is_checked_against_the_passage_it_cites_not_the_best_one():
    claim = _run("Saved data is available in future sessions [3].").meta["claims"][0]
    assert claim["sources"] == [3] and not claim["supported"]
    out_of_range = _run("Saved data is available in future sessions [9].").meta["claims"][0]
    assert out_of_range["sources"] == [1] and out_of_range["supported"]  # an invalid number: the best passage


def test_threshold_decides_partial_support():
    text = "The q() command ends the session and deletes all bananas [2]."
    score = _run(text).meta["claims"][0]["score"]
    assert 0 < score < 1
    assert _run(text, threshold=score).meta["claims"][0]["supported"]
    assert not _run(text, threshold=min(1.0, score + 0.01)).meta["claims"][0]["supported"]


def test_drop_mode_removes_unsupported_sentences():
    reply = _run(f"{SUPPORTED} {UNSUPPORTED} {UNCITED}", unsupported="drop")
    assert reply.text == f"{SUPPORTED} {UNCITED}"
    assert [c["text"] for c in reply.meta["claims"]] == [SUPPORTED, UNCITED]
    assert reply.meta["claims_dropped"] == 1


def test_a_trailing_citation_belongs_to_the_last_sentence():
    text = "Saved data is available in future sessions. Plots are written with png() [3]"
    claims = _run(text).meta["claims"]
    assert [c["sources"] for c in claims] == [[1], [3]]
    assert claims[1]["text"] == "Plots are written with png() [3]"


def test_drop_mode_refuses_when_nothing_is_left():
    reply = _run(UNSUPPORTED, unsupported="drop", refusal="I don't know.")
    assert reply.text == "I don't know."
    assert reply.meta["claims"] == []


def test_refuse_mode_refuses_only_when_no_sentence_is_supported():
    mixed = f"{SUPPORTED} {UNSUPPORTED}"
    assert _run(mixed, unsupported="refuse").text == mixed
    refused = _run(f"{UNSUPPORTED} Apples are red [1].", unsupported="refuse")
    assert refused.text.startswith("I don't know")
    assert refused.meta["claims"] == []


def test_refuse_mode_refuses_below_the_supported_share():
    mixed = f"{SUPPORTED} {UNSUPPORTED} Apples are red [1]."  # 1 of 3 supported
    assert _run(mixed, unsupported="refuse", min_supported_share=0.3).text == mixed
    assert _run(mixed, unsupported="refuse", min_supported_share=0.5).text.startswith("I don't know")
    assert _run(mixed, min_supported_share=0.5).text == mixed  # keep mode never refuses


def test_refusals_and_non_claims_are_never_checked_or_dropped():
    refusal = [ChatMessage.from_assistant("I don't know. Bananas grow in tropical climates.")]
    for mode in ("keep", "drop", "refuse"):
        assert ClaimChecker(unsupported=mode).run(replies=refusal, documents=DOCS)["replies"] == refusal
    reply = _run(f"Yes. {UNSUPPORTED}", unsupported="drop")
    assert reply.text.startswith("I don't know")  # "Yes." is no claim: nothing supported is left
    assert _run(f"Yes. {SUPPORTED}", unsupported="drop").text == f"Yes. {SUPPORTED}"


def test_without_passages_no_claim_is_supported():
    reply = _run(SUPPORTED, documents=None)
    assert reply.meta["claims"] == [{"text": SUPPORTED, "sources": [], "supported": False, "score": 0.0}]


def test_in_yaml_pipeline_after_the_citation_attributor():
    yaml_text = """
components:
  citations:
    type: components.builders.citation_attributor.CitationAttributor
    init_parameters: {}
  claims:
    type: components.validators.claim_checker.ClaimChecker
    init_parameters: {threshold: 0.6, unsupported: drop}
connections:
  - {sender: citations.replies, receiver: claims.replies}
"""
    pipe = Pipeline.loads(yaml_text, allowed_modules=["components"])
    replies = [ChatMessage.from_assistant("Terminate the session with the q() command. Bananas are yellow.")]
    out = pipe.run({"citations": {"replies": replies, "documents": DOCS}, "claims": {"documents": DOCS}})
    reply = out["claims"]["replies"][0]
    # the inferred [n] (appended for the whole answer) is re-attributed to what is left after the drop
    assert reply.text == "Terminate the session with the q() command. [2]"
    assert reply.meta["citations"] == "inferred"
    assert reply.meta["claims"] == [
        {"text": "Terminate the session with the q() command.", "sources": [2], "supported": True, "score": 1.0}
    ]


def test_words_outside_ascii_are_content_words():
    passage = [Document(content="Die Datei wird beim Beenden der Sitzung gespeichert.")]
    assert content_words("Größe") == content_words("größe") != set()
    assert _run("Die Datei wird gespeichert [1].", documents=passage).meta["claims"][0]["supported"]
    assert not _run("Die Größe ändert sich nie [1].", documents=passage).meta["claims"][0]["supported"]
