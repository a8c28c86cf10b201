"""Filter validation in the query service: malformed or unstorable filters are a 400 before any store sees them."""

import pytest

from app.errors import InvalidInputError
from app.services.query_filters import validate_filters


@pytest.mark.parametrize(
    "filters",
    [
        {"field": "meta.team", "operator": "==", "value": "qa"},
        {"field": "meta.n", "operator": ">", "value": 3.5},
        {"field": "meta.n", "operator": "in", "value": [1, 2]},
        {"field": "meta.a.b", "operator": "!=", "value": None},
        {"field": "content", "operator": "==", "value": "x"},
        {"operator": "NOT", "conditions": [{"field": "id", "operator": "==", "value": "abc"}]},
    ],
)
def test_well_formed_filters_pass(filters):
    assert validate_filters(filters) == filters


@pytest.mark.parametrize(
    ("filters", "reason"),
    [
        ({"field": "team", "operator": "==", "value": "qa"}, "must be 'content', 'id' or 'meta.<name>'"),
        ({"field": "meta.n'; DROP TABLE x;--", "operator": "==", "value": 1}, "must be 'content', 'id'"),
        ({"field": "meta.n", "operator": "==", "value": {"a": 1}}, "a filter value must be"),
        ({"field": "meta.n", "operator": "==", "value": 10**30}, "a filter value must be"),
        ({"field": "meta.n", "operator": "==", "value": float("nan")}, "a filter value must be"),
        ({"field": "meta.n", "operator": ">=", "value": [1]}, "a filter value must be"),
        ({"field": "meta.n", "operator": "in", "value": 5}, "needs a list"),
        ({"field": "meta.n", "operator": "in", "value": [[1]]}, "needs a list"),
        ({"operator": "AND", "conditions": [{"field": "x", "operator": "==", "value": 1}]}, "must be 'content'"),
    ],
)
def test_unusable_filters_are_invalid_input(filters, reason):
    with pytest.raises(InvalidInputError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        validate_filters(filters)
