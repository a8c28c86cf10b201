import random

import pytest
from haystack import Document, Pipeline
from haystack.core.serialization import component_from_dict, component_to_dict
from haystack.dataclasses import ChatMessage

from components.builders.citation_repointer import CitationRepointer

DOCS = [
    Document(content="Switch between the text consoles with Alt-F1 to Alt-F6."),
    Document(content="From the graphical desktop, press Ctrl-Alt-F3 to reach text console 3."),
    Document(content="The aptitude package manager keeps its logs in /var/log/aptitude."),
]


def _run(text, documents=DOCS, **init):
    return CitationRepointer(**init).run(replies=[ChatMessage.from_assistant(text)], documents=documents)["replies"][0]


def _streamed(text, pieces, documents=DOCS, **init):
    stream = CitationRepointer(**init).stream(documents)
    sent = [stream.feed(piece) for piece in pieces]
    return sent, "".join(sent) + stream.flush()


def test_init_validates_and_round_trips():
    for bad in (-0.1, 1.5, "0.5", True):
        with pytest.raises(ValueError, match="min_support"):
            CitationRepointer(min_support=bad)
    component = CitationRepointer(min_support=0.4)
    data = component_to_dict(component, "repointer")
    assert data["init_parameters"] == {"min_support": 0.4}
    assert component_to_dict(component_from_dict(CitationRepointer, data, "repointer"), "repointer") == data


def test_a_citation_of_a_passage_without_the_sentence_names_the_one_that_holds_it():
    reply = _run("From the desktop, press Ctrl-Alt-F3 to reach console 3 [1].")
    assert reply.text == "From the desktop, press Ctrl-Alt-F3 to reach console 3 [2]."
    assert reply.meta["citations_moved"] == [[1, 2]]


def test_supported_out_of_range_and_unrelated_citations_stay():
    for text in (
        "Press Ctrl-Alt-F3 from the graphical desktop [2].",  # its passage holds it
        "Press Ctrl-Alt-F3 from the graphical desktop [7].",  # no such passage: the CitationAttributor's case
        "Bananas grow in tropical climates [3].",  # no passage holds it better
        "The answer has no citation.",
    ):
        reply = ChatMessage.from_assistant(text)
        assert CitationRepointer().run(replies=[reply], documents=DOCS)["replies"][0] is reply
    refusal = [ChatMessage.from_assistant("I don't know.")]
    assert CitationRepointer().run(replies=refusal)["replies"] == refusal


def test_min_support_decides_when_a_citation_holds():
    text = "Aptitude logs to /var/log/aptitude from the desktop console [2]."  # [2] holds 2 of its 6 words
    assert _run(text).text.endswith("[3].")
    assert _run(text, min_support=0.3).text == text


def test_each_citation_is_decided_by_its_own_sentence():
    text = "Press Ctrl-Alt-F3 from the desktop [3]. Aptitude logs go to /var/log/aptitude [1]. Consoles Alt-F1 [1]."
    assert _run(text).text == (
        "Press Ctrl-Alt-F3 from the desktop [2]. Aptitude logs go to /var/log/aptitude [3]. Consoles Alt-F1 [1]."
    )


def test_adjacent_citations_never_name_the_same_passage_twice():
    assert _run("Press Ctrl-Alt-F3 from the graphical desktop [1][3].").text == (
        "Press Ctrl-Alt-F3 from the graphical desktop [2][3]."
    )
    assert _run("Press Ctrl-Alt-F3 from the graphical desktop [01][1].").text == (
        "Press Ctrl-Alt-F3 from the graphical desktop [2][1]."  # the second would name [2] again: it stays
    )


def test_streamed_pieces_add_up_to_the_answer_however_the_text_is_split():
    text = "From the desktop, press Ctrl-Alt-F3 [1][3]. Logs: /var/log/aptitude [1]. A list [a] or [] [12"
    whole = _run(text).text
    assert whole.startswith("From the desktop, press Ctrl-Alt-F3 [2][3]. Logs: /var/log/aptitude [3].")
    generator = random.Random(7)
    for _ in range(200):
        cuts = sorted(generator.sample(range(1, len(text)), generator.randint(1, 20)))
        pieces = [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        assert _streamed(text, pieces)[1] == whole


def test_a_stream_holds_back_only_an_unfinished_citation():
    sent, whole = _streamed("x", ["Press Ctrl-Alt-F3 ", "[", "1", "]", " now", " [", "b]"])
    assert sent == ["Press Ctrl-Alt-F3 ", "", "", "[2]", " now", " ", "[b]"]
    assert whole == "Press Ctrl-Alt-F3 [2] now [b]"
    stream = CitationRepointer().stream(DOCS)
    assert stream.feed("Ctrl-Alt-F3 [1") == "Ctrl-Alt-F3 "
    assert stream.flush() == "[1"  # the end of the text: passed on as written


def test_in_yaml_pipeline():
    yaml_text = """
components:
  repointer:
    type: components.builders.citation_repointer.CitationRepointer
    init_parameters:
      min_support: 0.5
connections: []
"""
    pipeline = Pipeline.loads(yaml_text, allowed_modules=["components"])
    replies = [ChatMessage.from_assistant("Press Ctrl-Alt-F3 from the graphical desktop [3].")]
    out = pipeline.run({"repointer": {"replies": replies, "documents": DOCS}})
    assert out["repointer"]["replies"][0].text == "Press Ctrl-Alt-F3 from the graphical desktop [2]."
