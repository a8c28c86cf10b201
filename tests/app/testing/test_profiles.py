"""app.testing.profiles: copies of the shipped profiles, edited on request."""

import pytest
import yaml

from app.testing.profiles import PIPELINES_DIR, TINY_MODEL, copy_profile, edit_yaml, tiny_profile


def test_copies_the_default_profile_without_the_other_profiles(tmp_path):
    target = copy_profile(tmp_path / "p")
    assert (target / "query.yml").read_text() == (PIPELINES_DIR / "query.yml").read_text()  # untouched: no edit
    assert not (target / "profiles").exists()


def test_copies_a_named_profile_and_applies_the_edits(tmp_path):
    def tag(data):
        data["x_edited"] = True

    target = copy_profile(tmp_path / "p", "pgvector", query=tag)
    assert yaml.safe_load((target / "query.yml").read_text())["x_edited"] is True
    assert "x_edited" not in yaml.safe_load((target / "indexing.yml").read_text())
    assert (target / "indexing.yml").read_text() == (PIPELINES_DIR / "profiles/pgvector/indexing.yml").read_text()


def test_an_unknown_profile_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no profile 'nope'"):
        copy_profile(tmp_path / "p", "nope")


def test_edit_yaml_writes_back_what_the_change_made(tmp_path):
    path = tmp_path / "x.yml"
    path.write_text("a: 1\n")
    assert edit_yaml(path, lambda data: data.update(b=2)) == {"a": 1, "b": 2}
    assert yaml.safe_load(path.read_text()) == {"a": 1, "b": 2}


def test_tiny_profile_uses_the_tiny_model(tmp_path):
    llm = yaml.safe_load((tiny_profile(tmp_path / "p", max_tokens=7) / "query.yml").read_text())["components"]["llm"]
    assert llm["init_parameters"]["model"] == TINY_MODEL
    assert llm["init_parameters"]["generation_kwargs"]["max_tokens"] == 7


def test_tiny_pgvector_profiles_get_a_table_of_their_own(tmp_path):
    tables = set()
    for name in ("a", "b"):
        target = tiny_profile(tmp_path / name, profile="pgvector")
        for file in ("indexing.yml", "query.yml"):
            for spec in yaml.safe_load((target / file).read_text())["components"].values():
                store = spec.get("init_parameters", {}).get("document_store")
                if store:
                    params = store["init_parameters"]
                    assert params["hnsw_index_name"] == f"{params['table_name']}_hnsw"
                    tables.add(params["table_name"])
    assert len(tables) == 2
