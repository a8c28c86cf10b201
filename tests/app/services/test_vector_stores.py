"""VectorStoreService on both state backends (`state_url`): stores over collections, attached files with their job
status, one-job batches, detaching, expiry; an in-memory document store stands for the collections' chunks."""

from __future__ import annotations

import time

import pytest
from haystack import Document
from haystack.document_stores.in_memory import InMemoryDocumentStore

from app.blobs import LocalBlobStore
from app.errors import InvalidInputError, NotFoundError
from app.jobs import FileState, FileStatus, JobService, JobStore
from app.jobs import store as job_tables
from app.services import collections, files, vector_stores
from app.services.collections import CollectionService
from app.services.documents import DocumentService
from app.services.files import FileService
from app.services.naming import document_id_for
from app.services.vector_stores import VectorStoreService, validate_attributes, validate_chunking


class JobTables:
    SQLITE_MIGRATIONS = job_tables.MIGRATIONS
    POSTGRES_MIGRATIONS = job_tables.POSTGRES_MIGRATIONS


@pytest.fixture
def chunks() -> InMemoryDocumentStore:
    return InMemoryDocumentStore()


@pytest.fixture
def service(open_state, tmp_path, chunks) -> VectorStoreService:
    jobs = JobService(JobStore(open_state(JobTables, "jobs", "jobs.db")), tmp_path / "spool")
    file_service = FileService(open_state(files, "files", "files.db"), LocalBlobStore(tmp_path / "blobs"), max_bytes=50)
    stores = VectorStoreService(
        open_state(vector_stores, "vector_stores", "vector_stores.db"),
        collections=CollectionService(
            chunks, open_state(collections, "collections", "collections.db"), on_drop=jobs.cancel_collection
        ),
        files=file_service,
        jobs=jobs,
        documents=DocumentService(chunks),
    )
    file_service.attached_to = stores.stores_of_file
    file_service.attached_within = stores.files_within
    return stores


def _index(chunks: InMemoryDocumentStore, store_id: str, file) -> None:
    """What the job would have written for the file."""
    meta = {"collection": store_id, "document_id": document_id_for(store_id, file.sha256), "file_id": file.id}
    chunks.write_documents([Document(content=f"chunk of {file.filename}", meta=meta)])


def test_a_store_is_a_new_collection_and_an_old_collection_is_a_store(service, chunks):
    store = service.create(name="manuals", metadata={"team": "qa"})
    assert store.id.startswith("vs_") and service.collections.exists(store.id)
    assert (store.name, store.metadata, store.status) == ("manuals", {"team": "qa"}, "completed")
    chunks.write_documents([Document(content="x", meta={"collection": "legacy", "document_id": "d"})])
    legacy = service.get("legacy")
    assert legacy.id == legacy.name == "legacy"
    assert {s.id for s in service.list()[0]} == {store.id, "legacy"}
    assert [s.id for s in service.list(within=frozenset({"legacy"}))[0]] == ["legacy"]
    assert service.modify(store.id, name="handbooks").name == "handbooks"
    service.delete(store.id)
    assert not service.collections.exists(store.id)
    with pytest.raises(NotFoundError):
        service.get(store.id)


def test_attaching_is_one_job_with_the_file_id_and_attributes_per_file(service, chunks):
    store = service.create(name="s")
    a = service.files.create(b"alpha text", "a.txt", "assistants")
    b = service.files.create(b"beta text", "b.txt", "assistants")
    batch = service.create_batch(
        store.id, files=[{"file_id": a.id, "attributes": {"n": 1}}, {"file_id": b.id, "attributes": {"n": 2}}]
    )
    assert batch.status == "in_progress" and batch.file_counts.in_progress == 2
    job = service.jobs.get(batch.job_id)
    assert job.collection == store.id
    assert [f.tags for f in job.files] == [{"n": 1, "file_id": a.id}, {"n": 2, "file_id": b.id}]
    assert service.get(store.id).status == "in_progress"
    # the worker indexes a, fails b
    service.jobs.store.update_file(job.id, 0, state=FileState.DONE, status=FileStatus.INDEXED)
    service.jobs.store.update_file(
        job.id, 1, state=FileState.FAILED, status=FileStatus.FAILED, error="b.txt: bad", error_code="extraction_failed"
    )
    view = service.get(store.id)
    assert (view.status, view.file_counts.completed, view.file_counts.failed) == ("completed", 1, 1)
    assert view.usage_bytes == a.bytes + b.bytes
    failed = service.get_file(store.id, b.id)
    assert failed.status == "failed"
    assert failed.last_error == {"code": "invalid_file", "message": "[extraction_failed] b.txt: bad"}
    assert [f.file_id for f in service.list_files(store.id, status="failed")[0]] == [b.id]
    assert service.get_batch(store.id, batch.id).status == "completed"
    assert service.stores_of_file(a.id) == [store.id] and set(service.files_within(frozenset({store.id}))) == {
        a.id,
        b.id,
    }


def test_detaching_removes_the_files_chunks_and_keeps_the_file(service, chunks):
    store = service.create(name="s")
    a = service.files.create(b"alpha text", "a.txt", "assistants")
    b = service.files.create(b"beta text", "b.txt", "assistants")
    service.attach(store.id, a.id)
    service.attach(store.id, b.id)
    _index(chunks, store.id, a)
    _index(chunks, store.id, b)
    service.detach(store.id, a.id)
    assert [d.meta["file_id"] for d in chunks.filter_documents()] == [b.id]
    assert service.files.get(a.id).id == a.id
    with pytest.raises(NotFoundError):
        service.get_file(store.id, a.id)


def test_cancelling_a_batch_cancels_its_job(service):
    store = service.create(name="s")
    a = service.files.create(b"alpha text", "a.txt", "assistants")
    batch = service.create_batch(store.id, file_ids=[a.id], attributes={"k": "v"})
    cancelled = service.cancel_batch(store.id, batch.id)
    assert cancelled.status == "cancelled" and cancelled.file_counts.cancelled == 1
    assert service.get_file(store.id, a.id).status == "cancelled"


def test_a_file_beyond_the_size_limit_fails_at_attach_time(service):
    store = service.create(name="s")
    service.files.max_bytes = 1000
    big = service.files.create(b"x" * 100, "big.txt", "assistants")
    service.files.max_bytes = 50
    service.attach(store.id, big.id)
    failed = service.get_file(store.id, big.id)
    assert failed.status == "failed" and failed.last_error is not None
    assert failed.last_error["code"] == "invalid_file" and "payload_too_large" in failed.last_error["message"]


def test_expiry_counts_from_the_last_activity(service):
    store = service.create(name="s", expires_after={"anchor": "last_active_at", "days": 1})
    service.check_active(store.id)
    with service.db.transaction() as db:
        db.execute("UPDATE vector_stores SET last_active_at = ? WHERE id = ?", (time.time() - 2 * 86_400, store.id))
    assert service.get(store.id).status == "expired"
    with pytest.raises(InvalidInputError, match="expired"):
        service.check_active(store.id)
    service.touch(store.id)
    assert service.get(store.id).status == "completed"
    assert service.modify(store.id, expires_after=None).expires_at is None


def test_the_sweep_drops_expired_stores_only(service):
    old = service.create(name="old", expires_after={"anchor": "last_active_at", "days": 1})
    young = service.create(name="young", expires_after={"anchor": "last_active_at", "days": 1})
    forever = service.create(name="forever")
    with service.db.transaction() as db:
        db.execute("UPDATE vector_stores SET last_active_at = ? WHERE id = ?", (time.time() - 2 * 86_400, old.id))
    assert service.drop_expired() == [old.id]
    assert not service.collections.exists(old.id)
    assert {s.id for s in service.list()[0]} == {young.id, forever.id}


@pytest.mark.parametrize(
    "attributes",
    [{f"k{n}": 1 for n in range(17)}, {"file_id": "x"}, {"k": "v" * 513}, {"k": [1]}, {"k": None}, {"1k": 1}],
)
def test_bad_attributes_are_refused(attributes):
    with pytest.raises(InvalidInputError):
        validate_attributes(attributes)


@pytest.mark.parametrize(
    "strategy",
    [
        {"type": "static", "static": {"max_chunk_size_tokens": 99, "chunk_overlap_tokens": 0}},
        {"type": "static", "static": {"max_chunk_size_tokens": 4097, "chunk_overlap_tokens": 0}},
        {"type": "static", "static": {"max_chunk_size_tokens": 400, "chunk_overlap_tokens": 201}},
        {"type": "static"},
        {"type": "other"},
    ],
)
def test_bad_chunking_is_refused(strategy):
    with pytest.raises(InvalidInputError):
        validate_chunking(strategy)


def test_chunking_auto_is_the_pipelines_own():
    assert validate_chunking({"type": "auto"}) is None
    static = {"type": "static", "static": {"max_chunk_size_tokens": 400, "chunk_overlap_tokens": 200}}
    assert validate_chunking(static) == static


def test_static_chunking_reaches_each_files_job_row_in_characters(service):
    static = {"type": "static", "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 50}}
    store = service.create(name="s", chunking_strategy=static)
    a = service.files.create(b"alpha text", "a.txt", "assistants")
    b = service.files.create(b"beta text", "b.txt", "assistants")
    c = service.files.create(b"gamma text", "c.txt", "assistants")
    own = {"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 0}}
    batch = service.create_batch(
        store.id,
        files=[
            {"file_id": a.id},
            {"file_id": b.id, "chunking_strategy": own},
            {"file_id": c.id, "chunking_strategy": {"type": "auto"}},
        ],
    )
    assert [f.split for f in service.jobs.get(batch.job_id).files] == [(800, 200), (400, 0), None]
    assert service.get_file(store.id, b.id).chunking_strategy == own
