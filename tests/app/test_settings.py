import os

import pytest

from app.settings import Settings


@pytest.fixture
def restored_env(monkeypatch, tmp_path):
    """export_env() writes os.environ: give every key it writes a value monkeypatch restores afterwards."""
    for name, value in (
        ("RAG_DATA_DIR", str(tmp_path)),
        ("RAG_PARSE_TIMEOUT_S", "300"),
        ("RAG_MAX_TEXT_CHARS", "5000000"),
        ("RAG_LLM_THREADS", ""),
        ("RAG_MODEL_DIR", str(tmp_path / "models")),
    ):
        monkeypatch.setenv(name, value)
    return tmp_path


def test_model_dir_defaults_to_the_data_dirs_models_folder_and_is_exported(restored_env, monkeypatch, tmp_path):
    monkeypatch.delenv("RAG_MODEL_DIR")
    settings = Settings(data_dir=restored_env / "data")
    assert settings.model_cache_dir == restored_env / "data" / "models"
    settings.export_env()
    assert os.environ["RAG_MODEL_DIR"] == str((restored_env / "data" / "models").resolve())

    shared = tmp_path / "shared-models"
    monkeypatch.setenv("RAG_MODEL_DIR", str(shared))
    settings = Settings(data_dir=restored_env / "data")
    assert settings.model_cache_dir == shared
    settings.export_env()
    assert os.environ["RAG_MODEL_DIR"] == str(shared.resolve())


def test_llm_threads_is_exported_for_the_pipeline_yaml_and_unset_means_llama_cpps_default(restored_env, monkeypatch):
    monkeypatch.setenv("RAG_LLM_THREADS", "")
    settings = Settings(data_dir=restored_env)
    assert settings.llm_threads is None
    settings.export_env()
    assert "RAG_LLM_THREADS" not in os.environ  # `${RAG_LLM_THREADS:-}` resolves to None: llama.cpp decides

    monkeypatch.setenv("RAG_LLM_THREADS", "3")
    settings = Settings(data_dir=restored_env)
    assert settings.llm_threads == 3
    settings.export_env()
    assert os.environ["RAG_LLM_THREADS"] == "3"

    with pytest.raises(ValueError, match="llm_threads"):
        Settings(data_dir=restored_env, llm_threads=0)
