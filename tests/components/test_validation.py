import pytest

from components.validation import check_int


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
