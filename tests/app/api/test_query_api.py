import json

import pytest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def indexed(client, csv_file, html_file):
    files = [("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in (csv_file, html_file)]
    assert client.post("/documents/upload", files=files, data={"collection": "q"}).status_code == 200
    return {"csv": csv_file.name, "html": html_file.name}


def test_search_only_returns_numbered_sources(client, indexed):
    body = client.post(
        "/query",
        json={"question": "seattle weather rain precipitation", "collection": "q", "generate": False, "top_k": 3},
    ).json()
    assert body["answer"] is None
    assert [s["n"] for s in body["sources"]] == [1, 2, 3]
    assert body["sources"][0]["filename"] == indexed["csv"]
    assert set(body["timings_ms"]) == {"retrieval", "generation", "total"}


def test_answer_with_filters_and_timings(client, indexed):
    body = client.post(
        "/query",
        json={
            "question": "What is Python?",
            "collection": "q",
            "top_k": 2,
            "filters": {"field": "meta.file_name", "operator": "==", "value": indexed["html"]},
        },
    ).json()
    assert body["answer"]
    assert all(s["filename"] == indexed["html"] for s in body["sources"])
    assert body["timings_ms"]["total"] >= body["timings_ms"]["retrieval"] > 0


def test_unanswerable_question_is_refused_without_llm(client, indexed):
    body = client.post("/query", json={"question": "Who won the 1998 football world cup?", "collection": "q"}).json()
    assert body["refused"] is True
    assert body["answer"].startswith("I don't know")
    assert body["sources"] == []


@pytest.mark.parametrize(
    "payload",
    [
        {"question": "", "collection": "q"},
        {"question": "x", "collection": "no spaces allowed"},
        {"question": "x", "collection": "q", "top_k": 0},
        {"question": "x", "collection": "q", "top_k": 51},
        {"question": "x", "collection": "q", "filters": {"field": "meta.a", "operator": "~", "value": 1}},
        {"question": "x", "collection": "q", "filters": {"operator": "AND", "conditions": "nope"}},
    ],
)
def test_bad_queries_are_4xx_with_reason(client, payload):
    for route in ("/query", "/query/stream"):
        response = client.post(route, json=payload)
        assert 400 <= response.status_code < 500, (route, response.text)
        assert response.json()["error"]["message"]


def test_stream_framing(client, indexed):
    with client.stream("POST", "/query/stream", json={"question": "What is Python?", "collection": "q"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join(response.iter_text())
    events = [block for block in text.split("\n\n") if block.strip()]
    kinds = [block.split("\n")[0].removeprefix("event: ") for block in events]
    assert kinds[0] == "sources"
    assert kinds[-1] == "done"
    assert kinds.count("sources") == 1
    assert kinds.count("token") >= 1
    done = json.loads(events[-1].split("\n")[1].removeprefix("data: "))
    tokens = "".join(json.loads(b.split("\n")[1].removeprefix("data: "))["text"] for b in events if "event: token" in b)
    assert done["answer"].startswith(tokens.strip()[:20])
    assert set(done["timings_ms"]) == {"retrieval", "generation", "total"}


def test_stream_refusal_sends_the_refusal_as_a_token(client, indexed):
    with client.stream(
        "POST", "/query/stream", json={"question": "Who won the 1998 world cup?", "collection": "q"}
    ) as r:
        text = "".join(r.iter_text())
    assert "I don't know" in text
    assert text.strip().split("\n\n")[-1].startswith("event: done")


def test_stream_reports_a_mid_way_failure_as_an_error_event(client, indexed, monkeypatch):
    llm = client.app.state.rag.pipelines.query.pipeline.get_component("llm")

    def broken(*args, **kwargs):
        raise RuntimeError("the model crashed")

    monkeypatch.setattr(llm, "run", broken)
    with client.stream("POST", "/query/stream", json={"question": "What is Python?", "collection": "q"}) as response:
        assert response.status_code == 200
        text = "".join(response.iter_text())
    blocks = [b for b in text.split("\n\n") if b.strip()]
    assert blocks[0].startswith("event: sources")
    assert blocks[-1].startswith("event: error")
    # the same code and message /query answers for an unknown failure; its text stays in the log (issue 13)
    assert '"code": "internal_error"' in blocks[-1] and "the model crashed" not in blocks[-1]
