import pytest

from components.validation import check_bool, check_int, check_positive_number


@pytest.mark.parametrize("value", [1, 7, 10])
def test_accepts_ints_in_range(value: int) -> None:
    assert check_int(value, "n", minimum=1, maximum=10) == value


@pytest.mark.parametrize(
    ("value", "kwargs", "message"),
    [
        (0, {"minimum": 1}, "n must be a positive integer, got 0"),
        (-1, {"minimum": 0}, "n must be an integer >= 0, got -1"),
        (11, {"minimum": 1, "maximum": 10}, "n must be an integer between 1 and 10, got 11"),
        (True, {"minimum": 0}, "n must be an integer >= 0, got True"),
        (2.0, {}, "n must be an integer, got 2.0"),
        ("3", {"maximum": 5}, "n must be an integer <= 5, got '3'"),
    ],
)
def test_refuses_with_a_reason(value: object, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError) as error:
        check_int(value, "n", **kwargs)
    assert str(error.value) == message


@pytest.mark.parametrize("value", [1, 0.25, 300])
def test_accepts_positive_numbers(value: float) -> None:
    assert check_positive_number(value, "t") == value


@pytest.mark.parametrize("value", [0, -1.5, float("nan"), True, "5", None])
def test_refuses_what_is_not_a_positive_number(value: object) -> None:
    with pytest.raises(ValueError) as error:
        check_positive_number(value, "t")
    assert str(error.value) == f"t must be a positive number, got {value!r}"


def test_check_bool_accepts_only_bools() -> None:
    assert check_bool(False, "flag") is False
    for value in (1, "yes", None):
        with pytest.raises(ValueError) as error:
            check_bool(value, "flag")
        assert str(error.value) == f"flag must be a bool, got {value!r}"
