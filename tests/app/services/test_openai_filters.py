"""OpenAI's attribute filter grammar translated into Haystack filters: every operator, nesting, and clear 400s."""

import pytest

from app.errors import InvalidInputError
from app.services.openai_filters import translate_filters
from app.services.query_filters import MAX_FILTER_CONDITIONS, MAX_FILTER_DEPTH, MAX_FILTER_LIST


@pytest.mark.parametrize(
    ("kind", "value", "operator"),
    [
        ("eq", "qa", "=="),
        ("eq", True, "=="),
        ("ne", 3, "!="),
        ("gt", 2020, ">"),
        ("gte", 1.5, ">="),
        ("lt", 0, "<"),
        ("lte", -2.25, "<="),
        ("in", ["a", "b"], "in"),
        ("nin", [1, 2.5], "not in"),
    ],
)
def test_every_comparison_becomes_its_haystack_operator_on_meta(kind, value, operator):
    assert translate_filters({"type": kind, "key": "team", "value": value}) == {
        "field": "meta.team",
        "operator": operator,
        "value": value,
    }


def test_nested_compounds_keep_their_structure():
    filters = {
        "type": "and",
        "filters": [
            {"type": "eq", "key": "team", "value": "qa"},
            {
                "type": "or",
                "filters": [{"type": "gte", "key": "year", "value": 2020}, {"type": "eq", "key": "page", "value": 1}],
            },
        ],
    }
    assert translate_filters(filters) == {
        "operator": "AND",
        "conditions": [
            {"field": "meta.team", "operator": "==", "value": "qa"},
            {
                "operator": "OR",
                "conditions": [
                    {"field": "meta.year", "operator": ">=", "value": 2020},
                    {"field": "meta.page", "operator": "==", "value": 1},
                ],
            },
        ],
    }


def test_no_filter_is_none():
    assert translate_filters(None) is None


def _nested(depth: int) -> dict:
    node: dict = {"type": "eq", "key": "a", "value": 1}
    for _ in range(depth):
        node = {"type": "and", "filters": [node]}
    return node


def test_nesting_up_to_the_query_service_limit_is_accepted_and_one_more_is_not():
    assert translate_filters(_nested(MAX_FILTER_DEPTH)) is not None
    with pytest.raises(InvalidInputError, match=f"at most {MAX_FILTER_DEPTH} and/or levels"):
        translate_filters(_nested(MAX_FILTER_DEPTH + 1))


@pytest.mark.parametrize(
    ("filters", "reason"),
    [
        ({"type": "like", "key": "a", "value": 1}, "unknown filter type 'like'"),
        ({"key": "a", "value": 1}, "unknown filter type None"),
        ({"type": "AND", "filters": []}, "unknown filter type 'AND'"),
        ("eq", "a filter must be an object"),
        ({"type": "and", "filters": ["x"]}, "a filter must be an object"),
        ({"type": "and", "filters": []}, "needs a non-empty list 'filters'"),
        ({"type": "or", "filters": {"type": "eq"}}, "needs a non-empty list 'filters'"),
        ({"type": "and", "filters": [{"type": "eq", "key": "a", "value": 1}], "key": "a"}, "only 'type' and 'filters'"),
        ({"type": "eq", "key": "a.b", "value": 1}, "invalid filter key 'a.b'"),
        ({"type": "eq", "key": "1a", "value": 1}, "invalid filter key '1a'"),
        ({"type": "eq", "key": "a'; DROP TABLE x;--", "value": 1}, "invalid filter key"),
        ({"type": "eq", "key": "x" * 65, "value": 1}, "invalid filter key"),
        ({"type": "eq", "key": 3, "value": 1}, "invalid filter key 3"),
        ({"type": "eq", "value": 1}, "invalid filter key None"),
        ({"type": "eq", "key": "a"}, "needs a 'value'"),
        ({"type": "eq", "key": "a", "value": 1, "field": "content"}, "only 'type', 'key' and 'value'"),
        ({"type": "eq", "key": "a", "value": None}, "needs a string, number or boolean"),
        ({"type": "eq", "key": "a", "value": {"x": 1}}, "needs a string, number or boolean"),
        ({"type": "ne", "key": "a", "value": [1]}, "needs a string, number or boolean"),
        ({"type": "eq", "key": "a", "value": 10**30}, "needs a string, number or boolean"),
        ({"type": "eq", "key": "a", "value": float("inf")}, "needs a string, number or boolean"),
        ({"type": "gt", "key": "a", "value": "2020"}, "'gt' on 'a' needs a number"),
        ({"type": "lte", "key": "a", "value": True}, "'lte' on 'a' needs a number"),
        ({"type": "in", "key": "a", "value": "qa"}, "needs a non-empty list of strings or numbers"),
        ({"type": "in", "key": "a", "value": []}, "needs a non-empty list"),
        ({"type": "nin", "key": "a", "value": [True]}, "needs a non-empty list of strings or numbers"),
        ({"type": "nin", "key": "a", "value": [["x"]]}, "needs a non-empty list of strings or numbers"),
        ({"type": "in", "key": "a", "value": ["x", 1]}, "a list of strings or a list of numbers, not both"),
        ({"type": "in", "key": "a", "value": list(range(MAX_FILTER_LIST + 1))}, f"at most {MAX_FILTER_LIST} values"),
    ],
)
def test_malformed_filters_are_invalid_input_with_a_reason(filters, reason):
    with pytest.raises(InvalidInputError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        translate_filters(filters)


def test_too_many_conditions_are_refused():
    wide = {"type": "or", "filters": [{"type": "eq", "key": "a", "value": i} for i in range(MAX_FILTER_CONDITIONS)]}
    with pytest.raises(InvalidInputError, match=f"at most {MAX_FILTER_CONDITIONS} comparisons"):
        translate_filters(wide)
    fits = {"type": "or", "filters": wide["filters"][:-1]}
    assert len(translate_filters(fits)["conditions"]) == MAX_FILTER_CONDITIONS - 1


def test_a_number_list_mixing_integers_and_floats_becomes_floats():
    """psycopg binds a list as one array type: [2019, 2.5] failed on pgvector (a 400) while LanceDB matched."""
    assert translate_filters({"type": "in", "key": "y", "value": [2019, 2.5]})["value"] == [2019.0, 2.5]
    assert translate_filters({"type": "nin", "key": "y", "value": [1, 2]})["value"] == [1, 2]
