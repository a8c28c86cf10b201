import pytest
from haystack import Document, Pipeline
from haystack.core.serialization import component_from_dict, component_to_dict
from haystack.dataclasses import ChatMessage

from components.builders.citation_attributor import CitationAttributor

DOCS = [
    Document(content="Data which is saved will be available in future R sessions."),
    Document(content="Use the R program, terminating with the q() command at the end of the session."),
    Document(content="Plots are written to files with png() and closed with dev.off()."),
]


def _reply(text):
    return [ChatMessage.from_assistant(text)]


def test_init_validates_and_round_trips():
    with pytest.raises(ValueError):
        CitationAttributor(min_overlap=0)
    with pytest.raises(ValueError):
        CitationAttributor(max_citations=0)
    component = CitationAttributor(min_overlap=3, refusal_prefix="No")
    data = component_to_dict(component, "citations")
    assert component_to_dict(component_from_dict(CitationAttributor, data, "citations"), "citations") == data


def test_missing_citation_is_attributed_to_best_passage():
    out = CitationAttributor().run(replies=_reply("End the session with the q() command."), documents=DOCS)
    reply = out["replies"][0]
    assert reply.text.endswith("[2]")
    assert reply.meta["citations"] == "inferred"


def test_existing_valid_citation_is_kept():
    reply = _reply("Use png() [3].")
    assert CitationAttributor().run(replies=reply, documents=DOCS)["replies"] == reply


def test_out_of_range_citation_is_replaced_by_inference():
    out = CitationAttributor().run(replies=_reply("Plots are written with png() and dev.off() [9]."), documents=DOCS)
    assert out["replies"][0].text.endswith("[3]")


def test_refusals_and_unrelated_answers_get_no_citation():
    refusal = _reply("I don't know.")
    assert CitationAttributor().run(replies=refusal, documents=DOCS)["replies"] == refusal
    unrelated = _reply("Bananas grow in tropical climates.")
    assert CitationAttributor().run(replies=unrelated, documents=DOCS)["replies"] == unrelated
    assert CitationAttributor().run(replies=unrelated)["replies"] == unrelated


def test_in_yaml_pipeline():
    yaml_text = """
components:
  citations:
    type: components.builders.citation_attributor.CitationAttributor
    init_parameters: {}
connections: []
"""
    pipe = Pipeline.loads(yaml_text, allowed_modules=["components"])
    out = pipe.run({"citations": {"replies": _reply("Terminate with the q() command."), "documents": DOCS}})
    assert "[2]" in out["citations"]["replies"][0].text


def test_inferred_citation_is_appended_so_the_reply_stays_a_prefix():
    text = "End the session with the q() command.\n"
    out = CitationAttributor().run(replies=_reply(text), documents=DOCS)["replies"][0].text
    assert out.startswith(text)  # the streamed tokens plus the marker make the answer
    assert out == text + "[2]"
