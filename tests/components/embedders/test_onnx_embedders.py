import asyncio

import numpy as np
import pytest
from haystack import Document, Pipeline
from haystack.core.serialization import component_from_dict, component_to_dict

from components.embedders.onnx_backend import EmbeddingModelError, get_encoder, resolve_model_path
from components.embedders.onnx_document_embedder import OnnxDocumentEmbedder
from components.embedders.onnx_text_embedder import OnnxTextEmbedder


def test_text_embedder_init_validates():
    with pytest.raises(ValueError, match="max_length"):
        OnnxTextEmbedder(max_length=4)
    with pytest.raises(ValueError, match="threads"):
        OnnxTextEmbedder(threads=0)


def test_document_embedder_init_validates():
    with pytest.raises(ValueError, match="batch_size"):
        OnnxDocumentEmbedder(batch_size=0)


def test_to_dict_from_dict_round_trip():
    text = OnnxTextEmbedder(max_length=128, prefix="q: ")
    data = component_to_dict(text, "text")
    assert data["type"] == "components.embedders.onnx_text_embedder.OnnxTextEmbedder"
    assert data["init_parameters"]["prefix"] == "q: "
    assert component_to_dict(component_from_dict(OnnxTextEmbedder, data, "text"), "text") == data
    doc = OnnxDocumentEmbedder(meta_fields_to_embed=["title"], batch_size=8)
    data = component_to_dict(doc, "doc")
    assert component_to_dict(component_from_dict(OnnxDocumentEmbedder, data, "doc"), "doc") == data


def test_text_embedding_is_normalized_and_semantic():
    embedder = OnnxTextEmbedder()
    query = np.array(embedder.run(text="How do I fit a linear regression model?")["embedding"])
    close = np.array(embedder.run(text="Linear models are fitted with the lm() function.")["embedding"])
    far = np.array(embedder.run(text="Ulaanbaatar is the capital of Mongolia.")["embedding"])
    assert query.shape == (384,)
    assert np.isclose(np.linalg.norm(query), 1.0, atol=1e-4)
    assert query @ close > 0.4
    assert query @ far < 0.2


def test_document_embedder_batches_keep_order_and_match_text_embedder():
    texts = ["short", "a somewhat longer sentence about statistics in R", "x " * 300, "graphics and plots"]
    docs = [Document(content=t) for t in texts]
    out = OnnxDocumentEmbedder(batch_size=2).run(documents=docs)["documents"]
    assert [d.content for d in out] == texts
    assert all(d.embedding is None for d in docs), "input documents must not be modified"
    single = OnnxTextEmbedder()
    for doc in out:
        expected = single.run(text=doc.content)["embedding"]
        assert np.allclose(doc.embedding, expected, atol=1e-4)


def test_meta_fields_change_the_embedding():
    doc = Document(content="Chapter one.", meta={"title": "An Introduction to R"})
    plain = OnnxDocumentEmbedder().run(documents=[doc])["documents"][0].embedding
    titled = OnnxDocumentEmbedder(meta_fields_to_embed=["title"]).run(documents=[doc])["documents"][0].embedding
    assert not np.allclose(plain, titled)


def test_run_rejects_wrong_input_types():
    with pytest.raises(TypeError):
        OnnxTextEmbedder().run(text=["not", "a", "string"])
    with pytest.raises(TypeError):
        OnnxDocumentEmbedder().run(documents=["text"])
    assert OnnxDocumentEmbedder().run(documents=[])["documents"] == []


def test_run_async():
    result = asyncio.run(OnnxTextEmbedder().run_async(text="hello"))
    assert len(result["embedding"]) == 384


def test_encoder_is_shared_per_configuration():
    a = get_encoder(model="all-MiniLM-L6-v2-int8", tokenizer="all-MiniLM-L6-v2-int8", max_length=256, threads=2)
    b = get_encoder(model="all-MiniLM-L6-v2-int8", tokenizer="all-MiniLM-L6-v2-int8", max_length=256, threads=2)
    assert a is b


def test_missing_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(EmbeddingModelError, match="not found"):
        resolve_model_path(str(tmp_path / "nope.onnx"))


def test_embedders_inside_yaml_pipeline():
    yaml_text = """
components:
  doc_embedder:
    type: components.embedders.onnx_document_embedder.OnnxDocumentEmbedder
    init_parameters: {batch_size: 4}
  text_embedder:
    type: components.embedders.onnx_text_embedder.OnnxTextEmbedder
    init_parameters: {}
connections: []
"""
    pipe = Pipeline.loads(yaml_text, allowed_modules=["components"])
    result = pipe.run(
        {
            "doc_embedder": {"documents": [Document(content="R is free software.")]},
            "text_embedder": {"text": "free software"},
        }
    )
    assert len(result["doc_embedder"]["documents"][0].embedding) == 384
    assert len(result["text_embedder"]["embedding"]) == 384


def test_immutable_embedding_is_a_query_embedding_with_the_same_values():
    from components.embedders.query_embedding import QueryEmbedding

    plain = OnnxTextEmbedder().run(text="How do I draw a histogram?")["embedding"]
    immutable = OnnxTextEmbedder(immutable_embedding=True).run(text="How do I draw a histogram?")["embedding"]

    assert isinstance(plain, list)
    assert isinstance(immutable, QueryEmbedding)
    assert np.allclose(np.asarray(immutable), plain)
    data = component_to_dict(OnnxTextEmbedder(immutable_embedding=True), "text")
    assert data["init_parameters"]["immutable_embedding"] is True
    assert component_from_dict(OnnxTextEmbedder, data, "text").immutable_embedding is True
