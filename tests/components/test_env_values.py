import pytest

from components.env_values import check_number_reference, resolve_number


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
