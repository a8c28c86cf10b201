import hashlib

import pytest

from components.generators import gguf_models
from components.generators.gguf_models import CATALOG, ModelUnavailableError, PackagedGguf, resolve_gguf


def _fake_entry(monkeypatch, tmp_path, payloads, sha=None):
    parts = []
    for i, payload in enumerate(payloads):
        part = tmp_path / f"part{i}.bin"
        part.write_bytes(payload)
        parts.append(part)
    digest = sha or hashlib.sha256(b"".join(payloads)).hexdigest()
    entry = PackagedGguf(
        file_name="fake.gguf", sha256=digest, parts=(("x", "a"), ("y", "b")), install_hint="pip install fake"
    )
    monkeypatch.setattr(PackagedGguf, "part_paths", lambda self: parts)
    monkeypatch.setitem(CATALOG, "fake-model", entry)


def test_explicit_path_is_returned(tmp_path):
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    assert resolve_gguf(str(model), cache_dir=str(tmp_path)) == model


def test_unknown_model_lists_catalog(tmp_path):
    with pytest.raises(ModelUnavailableError, match=r"qwen2\.5-coder-0\.5b-instruct-q4_k_m"):
        resolve_gguf("no-such-model", cache_dir=str(tmp_path))


def test_multi_part_model_is_reassembled_verified_and_cached(monkeypatch, tmp_path):
    _fake_entry(monkeypatch, tmp_path, [b"GGUF" * 1000, b"tail" * 10])
    cache = tmp_path / "cache"
    path = resolve_gguf("fake-model", cache_dir=str(cache))
    assert path == cache / "fake.gguf"
    assert path.read_bytes() == b"GGUF" * 1000 + b"tail" * 10
    calls = []
    monkeypatch.setattr(gguf_models, "_reassemble", lambda parts, target: calls.append(target))
    assert resolve_gguf("fake-model", cache_dir=str(cache)) == path
    assert calls == [], "a verified cached model is not reassembled again"


def test_cache_dir_naming_an_unset_variable_is_an_error_not_a_folder(monkeypatch, tmp_path):
    _fake_entry(monkeypatch, tmp_path, [b"a", b"b"])
    monkeypatch.delenv("RAG_TEST_UNSET_MODELS", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelUnavailableError, match=r"RAG_TEST_UNSET_MODELS.*not set"):
        resolve_gguf("fake-model", cache_dir="${RAG_TEST_UNSET_MODELS}")
    assert not any(path.name.startswith("$") for path in tmp_path.iterdir())


def test_checksum_mismatch_is_refused_and_leaves_no_file(monkeypatch, tmp_path):
    _fake_entry(monkeypatch, tmp_path, [b"a", b"b"], sha="0" * 64)
    cache = tmp_path / "cache"
    with pytest.raises(ModelUnavailableError, match="Checksum mismatch"):
        resolve_gguf("fake-model", cache_dir=str(cache))
    assert not (cache / "fake.gguf").exists()


def test_missing_package_names_the_install_command(tmp_path):
    entry = PackagedGguf(
        file_name="f.gguf",
        sha256="0" * 64,
        parts=(("not_installed_pkg_xyz", "f.gguf"),),
        install_hint="pip install xyz",
    )
    with pytest.raises(ModelUnavailableError, match="pip install xyz"):
        entry.part_paths()


def test_packaged_smollm_resolves_in_place(tmp_path):
    path = resolve_gguf("smollm2-135m-instruct-q4_1", cache_dir=str(tmp_path))
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert (tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf.verified").is_file()
