"""Vector stores, their files and file batches through the official `openai` SDK (TestClient as its http client)."""

import time
import uuid

import pytest
from openai import BadRequestError, NotFoundError, OpenAI, UnprocessableEntityError

pytestmark = pytest.mark.integration

TEXT = "The lighthouse keeper lights the lamp at dusk and logs every passing ship in the register. "


@pytest.fixture(scope="module")
def sdk(client, auth_headers):
    return OpenAI(
        base_url=f"{client.base_url}/v1",
        api_key=auth_headers["Authorization"].removeprefix("Bearer "),
        http_client=client,
        max_retries=0,
    )


def _upload(sdk: OpenAI, text: str, name: str = "notes.txt"):
    return sdk.files.create(file=(name, text.encode(), "text/plain"), purpose="assistants")


def _chunks(client, store_id: str) -> list:
    """The chunks of a store's collection, straight from the document store."""
    store = client.app.state.rag.pipelines.document_store
    return store.filter_documents({"field": "meta.collection", "operator": "==", "value": store_id})


def _wait_file(sdk: OpenAI, store_id: str, file_id: str):
    deadline = time.monotonic() + 120
    while True:
        file = sdk.vector_stores.files.retrieve(file_id, vector_store_id=store_id)
        if file.status != "in_progress" or time.monotonic() > deadline:
            return file
        time.sleep(0.2)


def test_create_list_retrieve_update_delete_a_store(sdk, client):
    store = sdk.vector_stores.create(
        name="manuals", metadata={"team": "qa"}, expires_after={"anchor": "last_active_at", "days": 7}
    )
    assert store.id.startswith("vs_") and len(store.id) == 27
    assert store.name == "manuals" and store.metadata == {"team": "qa"} and store.status == "completed"
    assert store.expires_after.days == 7 and store.expires_at == store.last_active_at + 7 * 86_400
    assert store.file_counts.total == 0 and store.usage_bytes == 0
    assert store.id in [c["name"] for c in client.get("/collections").json()]
    assert store.id in [s.id for s in sdk.vector_stores.list(limit=100).data]
    assert sdk.vector_stores.retrieve(store.id).name == "manuals"
    renamed = sdk.vector_stores.update(store.id, name="handbooks", metadata={"team": "ops"})
    assert renamed.name == "handbooks" and renamed.metadata == {"team": "ops"}
    deleted = sdk.vector_stores.delete(store.id)
    assert deleted.id == store.id and deleted.deleted and deleted.object == "vector_store.deleted"
    with pytest.raises(NotFoundError):
        sdk.vector_stores.retrieve(store.id)


def test_an_existing_collection_is_a_store(sdk, client):
    files = [("files", ("old.txt", (TEXT + "old").encode(), "text/plain"))]
    assert client.post("/documents/upload", files=files, data={"collection": "legacy"}).status_code == 200
    store = sdk.vector_stores.retrieve("legacy")
    assert store.id == store.name == "legacy" and store.status == "completed"
    assert "legacy" in [s.id for s in sdk.vector_stores.list(limit=100).data]


def test_list_pages_with_a_cursor(sdk):
    ids = [sdk.vector_stores.create(name=f"page-{n}").id for n in range(3)]
    first = sdk.vector_stores.list(limit=2, order="asc")
    assert len(first.data) == 2 and first.has_more
    rest = sdk.vector_stores.list(limit=100, order="asc", after=first.data[-1].id)
    seen = [s.id for s in first.data] + [s.id for s in rest.data]
    assert seen.index(ids[0]) < seen.index(ids[1]) < seen.index(ids[2]) and len(seen) == len(set(seen))
    all_ids = [s.id for s in sdk.vector_stores.list(limit=2)]  # the SDK's auto-paging follows last_id
    assert set(ids) <= set(all_ids)


def test_attach_a_file_then_detach_it(sdk, client):
    store = sdk.vector_stores.create(name="attach")
    uploaded = _upload(sdk, TEXT + uuid.uuid4().hex)
    attached = sdk.vector_stores.files.create(
        vector_store_id=store.id, file_id=uploaded.id, attributes={"team": "qa", "year": 2024, "public": True}
    )
    assert attached.id == uploaded.id and attached.vector_store_id == store.id
    assert attached.attributes == {"team": "qa", "year": 2024, "public": True}
    done = _wait_file(sdk, store.id, uploaded.id)
    assert done.status == "completed" and done.last_error is None and done.usage_bytes == uploaded.bytes
    chunks = _chunks(client, store.id)
    assert chunks and all(c.meta["file_id"] == uploaded.id and c.meta["team"] == "qa" for c in chunks)
    counted = sdk.vector_stores.retrieve(store.id)
    assert counted.file_counts.completed == 1 and counted.file_counts.total == 1 and counted.usage_bytes > 0
    assert [f.id for f in sdk.vector_stores.files.list(vector_store_id=store.id, filter="completed")] == [uploaded.id]
    assert list(sdk.vector_stores.files.list(vector_store_id=store.id, filter="failed")) == []
    removed = sdk.vector_stores.files.delete(uploaded.id, vector_store_id=store.id)
    assert removed.deleted and removed.id == uploaded.id
    assert _chunks(client, store.id) == []
    assert sdk.files.retrieve(uploaded.id).id == uploaded.id  # the file itself stays
    with pytest.raises(NotFoundError):
        sdk.vector_stores.files.retrieve(uploaded.id, vector_store_id=store.id)


def test_a_file_that_cannot_be_indexed_fails_with_openais_code(sdk):
    store = sdk.vector_stores.create(name="bad")
    broken = sdk.files.create(file=("broken.pdf", b"%PDF-1.4 not really", "application/pdf"), purpose="assistants")
    sdk.vector_stores.files.create(vector_store_id=store.id, file_id=broken.id)
    failed = _wait_file(sdk, store.id, broken.id)
    assert failed.status == "failed"
    assert failed.last_error.code in ("invalid_file", "unsupported_file") and failed.last_error.message.startswith("[")
    assert sdk.vector_stores.retrieve(store.id).file_counts.failed == 1


def test_file_batch_create_and_poll_is_one_job(sdk, client):
    store = sdk.vector_stores.create(name="batch", chunking_strategy={"type": "auto"})
    first, second = _upload(sdk, TEXT + "one " + uuid.uuid4().hex), _upload(sdk, TEXT + "two " + uuid.uuid4().hex)
    batch = sdk.vector_stores.file_batches.create_and_poll(
        vector_store_id=store.id,
        files=[{"file_id": first.id, "attributes": {"n": 1}}, {"file_id": second.id, "attributes": {"n": 2}}],
        poll_interval_ms=100,
    )
    assert batch.id.startswith("vsfb_") and batch.status == "completed"
    assert batch.file_counts.completed == 2 and batch.file_counts.total == 2
    listed = sdk.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id)
    assert {(f.id, f.attributes["n"]) for f in listed} == {(first.id, 1), (second.id, 2)}
    jobs = client.get("/jobs", params={"collection": store.id}).json()["jobs"]
    assert len(jobs) == 1 and len(jobs[0]["files"]) == 2
    again = sdk.vector_stores.file_batches.retrieve(batch.id, vector_store_id=store.id)
    assert again.status == "completed"
    cancelled = sdk.vector_stores.file_batches.cancel(batch.id, vector_store_id=store.id)  # finished: unchanged
    assert cancelled.status == "completed"


def test_create_a_store_with_files_attaches_them(sdk):
    uploaded = _upload(sdk, TEXT + uuid.uuid4().hex)
    store = sdk.vector_stores.create(name="with-files", file_ids=[uploaded.id])
    assert store.file_counts.total == 1
    assert _wait_file(sdk, store.id, uploaded.id).status == "completed"


def test_update_attributes_reindexes_the_file(sdk, client):
    store = sdk.vector_stores.create(name="attrs")
    uploaded = _upload(sdk, TEXT + uuid.uuid4().hex)
    sdk.vector_stores.files.create(vector_store_id=store.id, file_id=uploaded.id, attributes={"team": "a"})
    _wait_file(sdk, store.id, uploaded.id)
    updated = sdk.vector_stores.files.update(uploaded.id, vector_store_id=store.id, attributes={"team": "b"})
    assert updated.attributes == {"team": "b"}
    assert _wait_file(sdk, store.id, uploaded.id).status == "completed"
    chunks = _chunks(client, store.id)
    assert chunks and {c.meta["team"] for c in chunks} == {"b"}


def test_bad_requests_are_4xx(sdk):
    store = sdk.vector_stores.create(name="bad-input")
    uploaded = _upload(sdk, TEXT + uuid.uuid4().hex)
    for attributes in ({f"k{n}": n for n in range(17)}, {"file_id": "x"}, {"x": "y" * 513}):
        with pytest.raises(BadRequestError):
            sdk.vector_stores.files.create(vector_store_id=store.id, file_id=uploaded.id, attributes=attributes)
    for strategy in (
        {"type": "static", "static": {"max_chunk_size_tokens": 50, "chunk_overlap_tokens": 0}},
        {"type": "static", "static": {"max_chunk_size_tokens": 400, "chunk_overlap_tokens": 300}},
    ):
        with pytest.raises((BadRequestError, UnprocessableEntityError)) as raised:
            sdk.vector_stores.create(name="x", chunking_strategy=strategy)
        assert raised.value.status_code in (400, 422)
    with pytest.raises(NotFoundError):
        sdk.vector_stores.files.create(vector_store_id=store.id, file_id="file-000000000000000000000000")
    with pytest.raises(NotFoundError):
        sdk.vector_stores.retrieve("vs_000000000000000000000000")
    with pytest.raises(NotFoundError):
        sdk.vector_stores.file_batches.retrieve("vsfb_x", vector_store_id=store.id)


def test_an_expired_store_says_so(sdk, client):
    store = sdk.vector_stores.create(name="old", expires_after={"anchor": "last_active_at", "days": 1})
    services = client.app.state.rag
    with services.vector_stores.db.transaction() as db:
        db.execute("UPDATE vector_stores SET last_active_at = ? WHERE id = ?", (time.time() - 2 * 86_400, store.id))
    assert sdk.vector_stores.retrieve(store.id).status == "expired"
    with pytest.raises(Exception, match="expired"):
        services.vector_stores.check_active(store.id)
    services.vector_stores.touch(store.id)
    assert sdk.vector_stores.retrieve(store.id).status == "completed"


def test_static_chunking_sets_the_splitters_size_for_the_stores_files(sdk, client):
    text = " ".join(f"The keeper logs ship number {n} at the harbour." for n in range(60))  # about 2900 characters
    static = {"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 0}}
    small = sdk.vector_stores.create(name="small-chunks", chunking_strategy=static)
    usual = sdk.vector_stores.create(name="usual-chunks")
    for store in (small, usual):
        uploaded = _upload(sdk, text + store.id)
        attached = sdk.vector_stores.files.create(vector_store_id=store.id, file_id=uploaded.id)
        assert _wait_file(sdk, store.id, uploaded.id).status == "completed"
    assert attached.chunking_strategy.static.max_chunk_size_tokens == 800  # auto: OpenAI's default shown
    shown = sdk.vector_stores.files.list(vector_store_id=small.id).data[0].chunking_strategy
    assert shown.type == "static" and shown.static.max_chunk_size_tokens == 100
    small_chunks, usual_chunks = _chunks(client, small.id), _chunks(client, usual.id)
    assert max(len(c.content) for c in small_chunks) <= 100 * 4  # four characters a token
    assert len(small_chunks) > len(usual_chunks)
