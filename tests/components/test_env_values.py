import pytest

from components.env_values import (
    check_number_reference,
    check_optional_count_reference,
    expand_path,
    resolve_number,
    resolve_optional_count,
    resolve_text,
)


@pytest.mark.parametrize("value", [5, 2.5, "7", "${SOME_LIMIT}", "${SOME_LIMIT:-12}", " ${SOME_LIMIT:-0.5} "])
def test_valid_numbers_and_references_pass(value):
    check_number_reference(value, "limit")


@pytest.mark.parametrize(
    "value", [0, -1, True, None, "abc", "${SOME_LIMIT:-abc}", "${SOME_LIMIT:-0}", "$SOME_LIMIT", [1]]
)
def test_invalid_values_are_refused(value):
    with pytest.raises(ValueError, match="limit"):
        check_number_reference(value, "limit")


def test_a_reference_reads_the_environment_else_its_default(monkeypatch):
    monkeypatch.delenv("SOME_LIMIT", raising=False)
    assert resolve_number("${SOME_LIMIT:-12}", "limit") == 12
    monkeypatch.setenv("SOME_LIMIT", "3.5")
    assert resolve_number("${SOME_LIMIT:-12}", "limit") == 3.5
    assert resolve_number(4, "limit") == 4.0


def test_an_unset_reference_without_default_or_a_bad_value_names_the_variable(monkeypatch):
    monkeypatch.delenv("SOME_LIMIT", raising=False)
    with pytest.raises(ValueError, match="SOME_LIMIT is not set"):
        resolve_number("${SOME_LIMIT}", "limit")
    monkeypatch.setenv("SOME_LIMIT", "-3")
    with pytest.raises(ValueError, match="positive"):
        resolve_number("${SOME_LIMIT:-12}", "limit")
    monkeypatch.setenv("SOME_LIMIT", "nan")
    with pytest.raises(ValueError, match="positive"):
        resolve_number("${SOME_LIMIT}", "limit")


@pytest.mark.parametrize("value", [None, 1, 8, "4", "${SOME_THREADS}", "${SOME_THREADS:-}", "${SOME_THREADS:-2}"])
def test_valid_optional_counts_pass(value):
    check_optional_count_reference(value, "n_threads")


@pytest.mark.parametrize("value", [0, -2, True, 2.5, "abc", "1.5", "${SOME_THREADS:-0}", "${SOME_THREADS:-x}", [2]])
def test_invalid_optional_counts_are_refused(value):
    with pytest.raises(ValueError, match="n_threads"):
        check_optional_count_reference(value, "n_threads")


def test_an_optional_count_is_none_when_its_variable_is_unset_or_empty(monkeypatch):
    monkeypatch.delenv("SOME_THREADS", raising=False)
    assert resolve_optional_count("${SOME_THREADS:-}", "n_threads") is None
    assert resolve_optional_count("${SOME_THREADS}", "n_threads") is None
    assert resolve_optional_count("${SOME_THREADS:-2}", "n_threads") == 2
    assert resolve_optional_count(None, "n_threads") is None
    assert resolve_optional_count(3, "n_threads") == 3
    monkeypatch.setenv("SOME_THREADS", "")
    assert resolve_optional_count("${SOME_THREADS:-}", "n_threads") is None
    monkeypatch.setenv("SOME_THREADS", "6")
    assert resolve_optional_count("${SOME_THREADS:-}", "n_threads") == 6
    monkeypatch.setenv("SOME_THREADS", "many")
    with pytest.raises(ValueError, match=r"n_threads: 'many' \(from '\$\{SOME_THREADS:-\}'\) is not an integer"):
        resolve_optional_count("${SOME_THREADS:-}", "n_threads")


def test_a_text_reference_reads_the_environment_else_its_default(monkeypatch):
    monkeypatch.delenv("SOME_URL", raising=False)
    assert resolve_text("http://a:1", "url") == "http://a:1"
    assert resolve_text("${SOME_URL:-http://b:2}", "url") == "http://b:2"
    monkeypatch.setenv("SOME_URL", "http://c:3")
    assert resolve_text("${SOME_URL:-http://b:2}", "url") == "http://c:3"
    monkeypatch.setenv("SOME_URL", "")
    with pytest.raises(ValueError, match="SOME_URL is not set"):
        resolve_text("${SOME_URL}", "url")


def test_expand_path_expands_variables_and_home_and_refuses_an_unset_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("RAG_TEST_MODELS_ROOT", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert expand_path("${RAG_TEST_MODELS_ROOT}/models", "cache_dir") == tmp_path / "models"
    assert expand_path("~/models", "cache_dir") == tmp_path / "home" / "models"
    monkeypatch.delenv("RAG_TEST_UNSET_ROOT", raising=False)
    with pytest.raises(ValueError, match=r"cache_dir '\$\{RAG_TEST_UNSET_ROOT\}/m' names an environment variable"):
        expand_path("${RAG_TEST_UNSET_ROOT}/m", "cache_dir")
