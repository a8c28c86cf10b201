"""Finding: nested filters gave a 500 (Lance's SQL parser from 15 NOT/OR levels, ~200 AND levels): a 400 now."""

import pytest

from app.services.query_filters import MAX_FILTER_CONDITIONS, MAX_FILTER_DEPTH, MAX_FILTER_LIST

pytestmark = pytest.mark.integration


def _nested(operator: str, levels: int) -> dict:
    filters: dict = {"field": "meta.file_name", "operator": "==", "value": "x"}
    for _ in range(levels):
        filters = {"operator": operator, "conditions": [filters]}
    return filters


def _ask(client, filters: dict) -> dict:
    return {"question": "What is Python?", "collection": "sec", "generate": False, "filters": filters}


@pytest.mark.parametrize(("operator", "levels"), [("NOT", 15), ("OR", 15), ("AND", 200), ("NOT", MAX_FILTER_DEPTH + 1)])
def test_redteam_15_nested_not_or_levels_gave_500_now_400(client, indexed, operator, levels):
    for route in ("/query", "/query/stream"):
        response = client.post(route, json=_ask(client, _nested(operator, levels)))
        assert response.status_code == 400, (route, response.text)
        assert response.json()["error"]["code"] == "invalid_input"
        assert f"at most {MAX_FILTER_DEPTH}" in response.json()["error"]["message"]


def test_filters_up_to_the_depth_cap_still_work(client, indexed):
    response = client.post("/query", json=_ask(client, _nested("AND", MAX_FILTER_DEPTH - 1)))
    assert response.status_code == 200, response.text


def test_redteam_too_many_conditions_is_400(client, indexed):
    wide = {
        "operator": "OR",
        "conditions": [{"field": "meta.file_name", "operator": "==", "value": str(i)} for i in range(200)],
    }
    response = client.post("/query", json=_ask(client, wide))
    assert response.status_code == 400, response.text
    assert f"at most {MAX_FILTER_CONDITIONS} conditions" in response.json()["error"]["message"]


def test_redteam_huge_in_list_is_400(client, indexed):
    huge = {"field": "meta.file_name", "operator": "in", "value": [str(i) for i in range(MAX_FILTER_LIST + 1)]}
    response = client.post("/query", json=_ask(client, huge))
    assert response.status_code == 400, response.text
    assert f"at most {MAX_FILTER_LIST} values" in response.json()["error"]["message"]
    fits = {"field": "meta.file_name", "operator": "in", "value": [indexed] + [str(i) for i in range(100)]}
    assert client.post("/query", json=_ask(client, fits)).status_code == 200
