"""`POST /v1/vector_stores/{id}/search` driven by the official `openai` SDK, on both stores (LanceDB and pgvector):
OpenAI's filter grammar returns exactly the matching documents, and the SDK's types keep every field we send."""

from __future__ import annotations

import hashlib
import json

import openai
import pytest
from openai.types import VectorStoreSearchResponse

from app.services.api_keys import Role
from app.settings import PROJECT_ROOT
from app.testing.api import admin_headers

pytestmark = pytest.mark.integration

STORE = "vs_search"
# Every text mentions the lighthouse, so an unfiltered search for it finds all of them (one chunk each).
DOCUMENTS = {
    "north-2019.txt": (
        "The lighthouse keeper lights the lamp at dusk in the northern bay.",
        {"team": "qa", "year": 2019, "region": "north", "public": True},
    ),
    "south-2021.txt": (
        "The lighthouse on the southern cape has a red lamp and a foghorn.",
        {"team": "ops", "year": 2021, "region": "south", "public": False},
    ),
    "south-2023.txt": (
        "Ships pass the southern lighthouse at night; the keeper logs them.",
        {"team": "qa", "year": 2023, "region": "south", "public": True},
    ),
    "north-2025.txt": (
        "A new lighthouse lamp was installed in the north in spring.",
        {"team": "dev", "year": 2025, "region": "north", "public": False},
    ),
    "untagged.txt": ("The old lighthouse has no lamp any more; only gulls live there.", {}),
}
ALL = set(DOCUMENTS)


@pytest.fixture(scope="module")
def uploaded(client):
    for name, (text, tags) in DOCUMENTS.items():
        response = client.post(
            "/documents/upload",
            files=[("files", (name, text.encode(), "text/plain"))],
            data={"collection": STORE, "metadata": json.dumps(tags)},
        )
        assert response.status_code == 200, response.text
        assert response.json()["files"][0]["status"] == "indexed"
    return DOCUMENTS


@pytest.fixture(scope="module")
def sdk(client, auth_headers):
    """The official client, its HTTP calls made through the app's TestClient with the suite's admin key."""
    key = auth_headers["Authorization"].removeprefix("Bearer ")
    return openai.OpenAI(base_url="http://testserver/v1", api_key=key, http_client=client, max_retries=0)


def _search(sdk, **kwargs):
    kwargs.setdefault("query", "lighthouse lamp")
    kwargs.setdefault("max_num_results", 10)
    return sdk.vector_stores.search(STORE, **kwargs)


def _names(page) -> set[str]:
    return {result.filename for result in page.data}


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (None, ALL),
        ({"type": "eq", "key": "team", "value": "qa"}, {"north-2019.txt", "south-2023.txt"}),
        # ne and nin also match a file without the attribute (Haystack's semantics, the same on every store)
        ({"type": "ne", "key": "team", "value": "qa"}, {"south-2021.txt", "north-2025.txt", "untagged.txt"}),
        ({"type": "eq", "key": "public", "value": True}, {"north-2019.txt", "south-2023.txt"}),
        ({"type": "gt", "key": "year", "value": 2021}, {"south-2023.txt", "north-2025.txt"}),
        ({"type": "gte", "key": "year", "value": 2021}, {"south-2021.txt", "south-2023.txt", "north-2025.txt"}),
        ({"type": "lt", "key": "year", "value": 2021}, {"north-2019.txt"}),
        ({"type": "lte", "key": "year", "value": 2021}, {"north-2019.txt", "south-2021.txt"}),
        ({"type": "in", "key": "team", "value": ["ops", "dev"]}, {"south-2021.txt", "north-2025.txt"}),
        ({"type": "nin", "key": "team", "value": ["ops", "dev"]}, {"north-2019.txt", "south-2023.txt", "untagged.txt"}),
        ({"type": "in", "key": "year", "value": [2019, 2025]}, {"north-2019.txt", "north-2025.txt"}),
        (
            {
                "type": "and",
                "filters": [
                    {"type": "eq", "key": "region", "value": "south"},
                    {"type": "eq", "key": "team", "value": "qa"},
                ],
            },
            {"south-2023.txt"},
        ),
        (
            {
                "type": "or",
                "filters": [
                    {"type": "eq", "key": "team", "value": "dev"},
                    {"type": "lt", "key": "year", "value": 2020},
                ],
            },
            {"north-2019.txt", "north-2025.txt"},
        ),
        (  # north AND (qa OR year >= 2024)  |  the south ops one
            {
                "type": "or",
                "filters": [
                    {
                        "type": "and",
                        "filters": [
                            {"type": "eq", "key": "region", "value": "north"},
                            {
                                "type": "or",
                                "filters": [
                                    {"type": "eq", "key": "team", "value": "qa"},
                                    {"type": "gte", "key": "year", "value": 2024},
                                ],
                            },
                        ],
                    },
                    {
                        "type": "and",
                        "filters": [
                            {"type": "eq", "key": "region", "value": "south"},
                            {"type": "eq", "key": "team", "value": "ops"},
                        ],
                    },
                ],
            },
            {"north-2019.txt", "north-2025.txt", "south-2021.txt"},
        ),
        ({"type": "eq", "key": "file_name", "value": "south-2021.txt"}, {"south-2021.txt"}),
        ({"type": "eq", "key": "team", "value": "nobody"}, set()),
    ],
)
def test_filters_return_exactly_the_matching_documents(sdk, uploaded, filters, expected):
    page = _search(sdk, filters=filters) if filters is not None else _search(sdk)
    assert _names(page) == expected
    assert len(page.data) == len(expected)  # one chunk per document, none twice


def test_results_parse_as_the_sdks_types_and_keep_our_extensions(sdk, client, uploaded):
    page = _search(sdk, query="keeper lights the lamp at dusk", max_num_results=4)
    assert page.object == "vector_store.search_results.page"
    assert page.model_extra["search_query"] == ["keeper lights the lamp at dusk"]
    assert page.has_more is False and page.model_extra["next_page"] is None
    documents = {d["filename"]: d for d in client.get("/documents", params={"collection": STORE}).json()["documents"]}
    first = page.data[0]
    assert isinstance(first, VectorStoreSearchResponse)
    assert first.filename == "north-2019.txt"
    assert first.attributes == DOCUMENTS["north-2019.txt"][1]
    assert first.content[0].type == "text" and "lights the lamp at dusk" in first.content[0].text
    assert set(first.model_extra) == {"page", "document_id", "chunk_id"}
    for result in page.data:
        assert 0.0 <= result.score <= 1.0
        assert result.attributes == DOCUMENTS[result.filename][1]  # the tags, none of the service's own metadata
        # no Files API upload: the file id is our document id
        assert result.file_id == result.model_extra["document_id"] == documents[result.filename]["document_id"]
        assert result.model_extra["chunk_id"]
    assert [r.score for r in page.data] == sorted((r.score for r in page.data), reverse=True)


def test_max_num_results_and_score_threshold_cut_the_results(sdk, uploaded):
    everything = _search(sdk)
    ranking = [(-r.score, hashlib.sha256(r.content[0].text.encode()).hexdigest()) for r in everything.data]
    assert ranking == sorted(ranking)  # by score, ties by the text's hash: the same order on every request
    assert len(_search(sdk, max_num_results=2).data) == 2
    threshold = everything.data[1].score  # keeps the best two, and any result tied with the second
    cut = _search(sdk, ranking_options={"ranker": "none", "score_threshold": threshold})
    assert cut.data and all(r.score >= threshold for r in cut.data)
    assert [r.model_extra["chunk_id"] for r in cut.data] == [
        r.model_extra["chunk_id"] for r in everything.data if r.score >= threshold
    ]
    assert _search(sdk, ranking_options={"score_threshold": 1.0}).data == [r for r in everything.data if r.score >= 1.0]


def test_a_list_query_searches_each_and_merges(sdk, uploaded):
    page = _search(sdk, query=["foghorn on the cape", "installed in spring"], max_num_results=10)
    assert page.model_extra["search_query"] == ["foghorn on the cape", "installed in spring"]
    chunks = [r.model_extra["chunk_id"] for r in page.data]
    assert len(chunks) == len(set(chunks)) == len(ALL)  # merged by chunk: no duplicates
    one = _search(sdk, query="foghorn on the cape", max_num_results=1).data[0]
    other = _search(sdk, query="installed in spring", max_num_results=1).data[0]
    assert {one.filename, other.filename} == {"south-2021.txt", "north-2025.txt"}
    best = {r.filename: r.score for r in page.data}
    assert best[one.filename] >= one.score and best[other.filename] >= other.score  # each keeps its best score


def test_rewrite_query_searches_the_keyword_form_and_reports_it(sdk, uploaded):
    page = _search(sdk, query="What does the keeper do at dusk?", rewrite_query=True)
    assert page.model_extra["search_query"] == ["keeper dusk"]
    assert page.data[0].filename == "north-2019.txt"
    assert _search(sdk, query="What does the keeper do?").model_extra["search_query"] == ["What does the keeper do?"]


@pytest.mark.parametrize(
    ("kwargs", "error", "reason"),
    [
        ({"filters": {"type": "like", "key": "team", "value": "qa"}}, openai.BadRequestError, "unknown filter type"),
        ({"filters": {"type": "eq", "key": "te am", "value": "qa"}}, openai.BadRequestError, "invalid filter key"),
        ({"filters": {"type": "gt", "key": "year", "value": "2020"}}, openai.BadRequestError, "needs a number"),
        ({"filters": {"type": "and", "filters": []}}, openai.BadRequestError, "non-empty list"),
        ({"query": ""}, openai.BadRequestError, "non-empty string"),
        ({"query": ["a"] * 11}, openai.BadRequestError, "1 to 10 strings"),
        ({"query": "x" * 5000}, openai.BadRequestError, "longer than"),
        ({"filters": {"type": "in", "key": "year", "value": ["2019", 2021]}}, openai.BadRequestError, "not both"),
        ({"max_num_results": 51}, openai.UnprocessableEntityError, "request validation failed"),
        ({"max_num_results": 0}, openai.UnprocessableEntityError, "request validation failed"),
        ({"ranking_options": {"score_threshold": 1.5}}, openai.UnprocessableEntityError, "request validation failed"),
    ],
)
def test_bad_requests_are_4xx_with_a_reason(sdk, uploaded, kwargs, error, reason):
    with pytest.raises(error) as raised:
        _search(sdk, **kwargs)
    assert reason in raised.value.message  # the SDK reads our error shape: {"error": {"code", "message"}}


def test_an_unknown_vector_store_is_404(sdk, uploaded):
    with pytest.raises(openai.NotFoundError):
        sdk.vector_stores.search("vs_000000000000000000000000", query="lighthouse")
    with pytest.raises(openai.NotFoundError):
        sdk.vector_stores.search("not a collection!", query="lighthouse")


def test_a_scoped_key_sees_only_its_vector_stores(sdk, client, api_settings, uploaded):
    headers = admin_headers(api_settings.data_dir, role=Role.READER.value, collections=frozenset({"other"}))
    scoped = openai.OpenAI(
        base_url="http://testserver/v1",
        api_key=headers["Authorization"].removeprefix("Bearer "),
        http_client=client,
        max_retries=0,
    )
    for store in (STORE, "vs_000000000000000000000000"):  # existing or not: no existence leak
        with pytest.raises(openai.PermissionDeniedError):
            scoped.vector_stores.search(store, query="lighthouse")


def test_a_comparison_the_stored_values_do_not_support_is_a_400_on_every_store(sdk, uploaded):
    with pytest.raises(openai.BadRequestError, match="cannot be applied to the stored metadata"):
        _search(sdk, filters={"type": "gt", "key": "team", "value": 5})  # team is text


def test_a_list_of_integers_and_floats_matches_on_every_store(sdk, uploaded):
    page = _search(sdk, filters={"type": "in", "key": "year", "value": [2019, 2025.5, 2023.0]})
    assert _names(page) == {"north-2019.txt", "south-2023.txt"}


def test_the_docs_snippet_runs_verbatim(sdk, client, capsys):
    """docs/api.md's example, run as written against a `docs` collection holding a file tagged team=qa."""
    text = b"To quit an R session, call q() or quit(); R asks whether to save the workspace image."
    response = client.post(
        "/documents/upload",
        files=[("files", ("R-intro.txt", text, "text/plain"))],
        data={"collection": "docs", "metadata": json.dumps({"team": "qa"})},
    )
    assert response.status_code == 200, response.text
    section = (PROJECT_ROOT / "docs" / "api.md").read_text(encoding="utf-8").split("## Vector store search", 1)[1]
    snippet = section.split("```python\n", 1)[1].split("```", 1)[0]
    exec(snippet, {"client": sdk})  # our own documentation
    printed = capsys.readouterr().out
    assert "R-intro.txt" in printed and "To quit an R session" in printed
