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


def test_n_threads_reference_round_trips_and_is_checked_at_init():
    llm = PackagedLlamaCppChatGenerator(model=TINY, n_threads="${RAG_LLM_THREADS:-}")
    data = llm.to_dict()
    assert data["init_parameters"]["n_threads"] == "${RAG_LLM_THREADS:-}"
    assert PackagedLlamaCppChatGenerator.from_dict(copy.deepcopy(data)).to_dict() == data
    with pytest.raises(ValueError, match="n_threads"):
        PackagedLlamaCppChatGenerator(model=TINY, n_threads="${RAG_LLM_THREADS:-zero}")


class _FakeLlama:
    """Records the keyword arguments llama_cpp.Llama would get."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs


@pytest.fixture
def fake_llama(monkeypatch, tmp_path):
    """warm_up() with a GGUF path and a stand-in for llama_cpp.Llama: only the arguments are under test."""
    from haystack_integrations.components.generators.llama_cpp.chat import chat_generator

    monkeypatch.setattr(chat_generator, "Llama", _FakeLlama)
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    return str(model)


@pytest.mark.parametrize(
    ("n_threads", "env", "expected"),
    [
        ("${RAG_LLM_THREADS:-}", None, None),  # unset: llama.cpp's own default
        ("${RAG_LLM_THREADS:-}", "", None),
        ("${RAG_LLM_THREADS:-}", "3", 3),
        ("${RAG_LLM_THREADS:-2}", None, 2),
        (None, "3", None),  # no reference, no variable read
        (4, "3", 4),
    ],
)
def test_n_threads_is_resolved_at_warm_up(fake_llama, monkeypatch, n_threads, env, expected):
    if env is None:
        monkeypatch.delenv("RAG_LLM_THREADS", raising=False)
    else:
        monkeypatch.setenv("RAG_LLM_THREADS", env)
    llm = PackagedLlamaCppChatGenerator(model=fake_llama, n_threads=n_threads)
    llm.warm_up()
    assert llm._model.kwargs.get("n_threads") == expected
    assert ("n_threads" in llm._model.kwargs) == (expected is not None)


def test_model_kwargs_n_threads_wins_and_a_bad_variable_is_named(fake_llama, monkeypatch):
    monkeypatch.setenv("RAG_LLM_THREADS", "3")
    llm = PackagedLlamaCppChatGenerator(
        model=fake_llama, n_threads="${RAG_LLM_THREADS:-}", model_kwargs={"n_threads": 1}
    )
    llm.warm_up()
    assert llm._model.kwargs["n_threads"] == 1
    monkeypatch.setenv("RAG_LLM_THREADS", "all")
    with pytest.raises(ValueError, match=r"n_threads: 'all' \(from '\$\{RAG_LLM_THREADS:-\}'\)"):
        PackagedLlamaCppChatGenerator(model=fake_llama, n_threads="${RAG_LLM_THREADS:-}").warm_up()


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


def test_generators_of_one_model_share_the_loaded_model_and_its_lock(fake_llama):
    llm = PackagedLlamaCppChatGenerator(model=fake_llama, generation_kwargs={"max_tokens": 200})
    condenser_llm = PackagedLlamaCppChatGenerator(model=fake_llama, generation_kwargs={"max_tokens": 64})
    other = PackagedLlamaCppChatGenerator(model=fake_llama, n_ctx=2048)
    for generator in (llm, condenser_llm, other):
        generator.warm_up()
    assert condenser_llm._model is llm._model
    assert condenser_llm._run_lock is llm._run_lock
    assert other._model is not llm._model
    assert other._run_lock is not llm._run_lock
    llm.close()
    assert llm._model is None
    assert condenser_llm._model is not None  # closing one generator leaves the other's model loaded
