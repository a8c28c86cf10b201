"""Red-team finding 3: `top_k` up to 50 was accepted but 50 passages exceed `n_ctx` 4096 (a 500), and a 120 KB CSV
row became one chunk that failed every generated answer retrieving it. Now the prompt path trims the passages to a
token budget (ContextBudget) and no chunk is longer than the splitter's size (ChunkSizeGuard). Default profile with
the tiny model, which keeps n_ctx 4096."""

from __future__ import annotations

from fastapi.testclient import TestClient

SPLIT_LENGTH = 1000  # the default profile's splitter.split_length

TOPICS = ["data frames", "vectors", "lists", "factors", "matrices", "functions", "packages", "graphics"]


def _long_passages(count: int) -> str:
    """`count` paragraphs of ~1000 characters about storing data in R (each its own chunk)."""
    paragraphs = []
    for i in range(count):
        topic = TOPICS[i % len(TOPICS)]
        sentence = (
            f"In R, {topic} are stored in memory as objects of the workspace; section {i} explains how the "
            f"interpreter stores {topic}, copies them on modification and frees them when no name refers to them. "
        )
        paragraphs.append((sentence * 6)[:990])
    return "\n\n".join(paragraphs)


def _chunks(client: TestClient, collection: str) -> list[str]:
    store = client.app.state.rag.pipelines.document_store
    docs = store.filter_documents({"field": "meta.collection", "operator": "==", "value": collection})
    return [doc.content or "" for doc in docs]


def test_query_top_k_50_long_passages_exceeds_n_ctx_answers_200_not_500(app_client, admin):
    files = [("files", ("storage.txt", _long_passages(60).encode(), "text/plain"))]
    upload = app_client.post("/documents/upload", files=files, data={"collection": "long-passages"}, headers=admin)
    assert upload.status_code == 200 and upload.json()["files"][0]["chunks"] >= 50, upload.text

    response = app_client.post(
        "/query",
        json={"question": "How does R store data frames in memory?", "collection": "long-passages", "top_k": 50},
        headers=admin,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["refused"] is False and body["answer"], body
    assert len(body["sources"]) == 50  # every retrieved passage is still a source, numbered as the prompt's [n]
    assert [s["n"] for s in body["sources"]] == list(range(1, 51))


def test_csv_one_120kb_row_poisons_collection_chunks_split_and_query_answers_200(app_client, admin):
    notes = " ".join(f"the warehouse inventory record {i} lists pallets of copper wire" for i in range(2_000))
    assert len(notes) > 120_000
    csv_text = f"id,notes\n1,short row about copper wire\n2,{notes}\n3,another short row\n"
    files = [("files", ("inventory.csv", csv_text.encode(), "text/csv"))]
    upload = app_client.post("/documents/upload", files=files, data={"collection": "wide-csv"}, headers=admin)
    assert upload.status_code == 200 and upload.json()["files"][0]["status"] == "indexed", upload.text

    chunks = _chunks(app_client, "wide-csv")
    assert len(chunks) > 100
    assert max(len(c) for c in chunks) <= SPLIT_LENGTH
    assert sum(len(c) for c in chunks) > 120_000  # nothing of the row was lost

    response = app_client.post(
        "/query",
        json={"question": "Which warehouse inventory record lists copper wire?", "collection": "wide-csv"},
        headers=admin,
    )
    assert response.status_code == 200, response.text
    assert response.json()["refused"] is False
