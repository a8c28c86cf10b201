import copy

from haystack import Document, Pipeline

from components.embedders.onnx_document_embedder import OnnxDocumentEmbedder
from components.preprocessors.semantic_document_splitter import RegexSentenceSplitter, SemanticDocumentSplitter

TEXT = (
    "R is a language for statistical computing. It provides linear models and tests. "
    "Statistical models are fitted with lm(). The summary function reports coefficients.\n\n"
    "Baking bread needs flour, water and yeast. Knead the dough for ten minutes. "
    "Let it rise for an hour before baking. Bake at 220 degrees until golden."
)


def test_regex_sentence_splitter_covers_text_and_keeps_abbreviations():
    text = "See e.g. the manual. It helps! Does it? Yes.\n\nNew paragraph"
    sentences = RegexSentenceSplitter().split_sentences(text)
    assert "".join(s["sentence"] for s in sentences) == text
    assert sentences[0]["sentence"].startswith("See e.g. the manual.")
    assert [text[s["start"] : s["end"]] for s in sentences] == [s["sentence"] for s in sentences]
    assert len(sentences) == 5


def test_round_trip_with_nested_embedder(monkeypatch):
    monkeypatch.setenv("HAYSTACK_DESERIALIZATION_ALLOWLIST", "components")
    splitter = SemanticDocumentSplitter(document_embedder=OnnxDocumentEmbedder(), sentences_per_group=1, min_length=10)
    data = splitter.to_dict()
    assert data["init_parameters"]["document_embedder"]["type"].endswith("OnnxDocumentEmbedder")
    assert SemanticDocumentSplitter.from_dict(copy.deepcopy(data)).to_dict() == data


def test_splits_at_topic_change_offline():
    splitter = SemanticDocumentSplitter(
        document_embedder=OnnxDocumentEmbedder(), sentences_per_group=1, percentile=0.8, min_length=20, max_length=1000
    )
    chunks = splitter.run(documents=[Document(content=TEXT, meta={"file_name": "t.txt"})])["documents"]
    assert len(chunks) >= 2
    assert "".join(c.content for c in chunks).replace(" ", "") == TEXT.replace(" ", "")
    boundary = next(i for i, c in enumerate(chunks) if "bread" in c.content)
    assert "statistic" not in chunks[boundary].content.lower()
    assert all(c.meta["file_name"] == "t.txt" for c in chunks)


def test_in_yaml_pipeline():
    yaml_text = """
components:
  splitter:
    type: components.preprocessors.semantic_document_splitter.SemanticDocumentSplitter
    init_parameters:
      sentences_per_group: 1
      min_length: 20
      document_embedder:
        type: components.embedders.onnx_document_embedder.OnnxDocumentEmbedder
        init_parameters: {}
connections: []
"""
    pipe = Pipeline.loads(yaml_text, allowed_modules=["components"])
    out = pipe.run({"splitter": {"documents": [Document(content=TEXT)]}})
    assert out["splitter"]["documents"]
