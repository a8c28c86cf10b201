import copy

import pytest
from haystack import Pipeline
from haystack.dataclasses import ChatMessage

from components.generators.packaged_llama_cpp_chat_generator import PackagedLlamaCppChatGenerator

TINY = "smollm2-135m-instruct-q4_1"


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    llm = PackagedLlamaCppChatGenerator(
        model=TINY,
        cache_dir=str(tmp_path_factory.mktemp("models")),
        n_ctx=1024,
        generation_kwargs={"max_tokens": 24, "temperature": 0.0},
    )
    llm.warm_up()
    return llm


def test_init_validates():
    with pytest.raises(ValueError):
        PackagedLlamaCppChatGenerator(model="")
    with pytest.raises(ValueError, match="n_ctx"):
        PackagedLlamaCppChatGenerator(model=TINY, n_ctx=10)
    with pytest.raises(ValueError, match="n_threads"):
        PackagedLlamaCppChatGenerator(model=TINY, n_threads=0)


def test_to_dict_from_dict_keeps_catalog_name_and_unexpanded_cache_dir():
    llm = PackagedLlamaCppChatGenerator(model=TINY, n_threads=2, generation_kwargs={"max_tokens": 5})
    data = llm.to_dict()
    assert data["init_parameters"]["model"] == TINY
    assert data["init_parameters"]["cache_dir"] == "${RAG_DATA_DIR}/models"
    assert PackagedLlamaCppChatGenerator.from_dict(copy.deepcopy(data)).to_dict() == data


def test_unknown_model_fails_at_warm_up():
    llm = PackagedLlamaCppChatGenerator(model="/nonexistent/model.gguf")
    with pytest.raises(RuntimeError, match="not found"):
        llm.warm_up()


@pytest.mark.integration
def test_generates_and_streams(tiny_llm):
    chunks = []
    out = tiny_llm.run([ChatMessage.from_user("Say hello.")], streaming_callback=chunks.append)
    reply = out["replies"][0].text
    assert reply
    assert len(chunks) > 1
    assert "".join(c.content for c in chunks).strip() == reply.strip()


@pytest.mark.integration
def test_in_yaml_pipeline(tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path))
    yaml_text = f"""
components:
  llm:
    type: components.generators.packaged_llama_cpp_chat_generator.PackagedLlamaCppChatGenerator
    init_parameters:
      model: {TINY}
      n_ctx: 512
      generation_kwargs: {{max_tokens: 8}}
connections: []
"""
    pipe = Pipeline.loads(yaml_text, allowed_modules=["components"])
    out = pipe.run({"llm": {"messages": [ChatMessage.from_user("Hi")]}})
    assert out["llm"]["replies"][0].text
    assert (tmp_path / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf.verified").is_file()
