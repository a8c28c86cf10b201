"""The collection registry: created collections are shared by every process (SQLite) and every host (PostgreSQL: the
registry tests run on both, `state_url`), a 409 for a second create, drop forgets them (also a collection only a job
knows of, and safely against jobs that run during the drop), and the JSON registry of an earlier release is imported
once."""

from __future__ import annotations

import json
import threading

import pytest
from haystack import Document
from haystack.document_stores.in_memory import InMemoryDocumentStore

from app.errors import ConflictError, NotFoundError
from app.jobs import JobRunner, JobService, JobStore, UploadedFile
from app.services import collections as collections_module
from app.services.collections import CollectionInfo, CollectionService, collection_filter
from app.services.ingest import IngestResult
from app.testing.stores import CountingStore
from components.stores.lancedb import LanceDBDocumentStore


@pytest.fixture
def store() -> InMemoryDocumentStore:
    store = InMemoryDocumentStore()
    store.write_documents(
        [
            Document(content="a", meta={"collection": "filled", "document_id": "d1"}),
            Document(content="b", meta={"collection": "filled", "document_id": "d1"}),
        ]
    )
    return store


@pytest.fixture
def registry(open_state):
    """Factory: another instance of the collections' tables on this test's backend (another process, or host)."""
    return lambda: open_state(collections_module, "collections", "collections.db")


def test_created_collections_are_seen_by_another_instance(store, tmp_path, registry):
    first = CollectionService(store, registry())
    assert first.create("empty").chunks == 0
    other = CollectionService(store, registry())  # another process on the same data dir
    assert other.names() == ["empty", "filled"]
    assert [(c.name, c.documents, c.chunks) for c in other.list()] == [("empty", 0, 0), ("filled", 1, 2)]
    for name in ("empty", "filled"):
        with pytest.raises(ConflictError):
            other.create(name)


def test_concurrent_creates_of_one_name_give_one_success(store, tmp_path, registry):
    services = [CollectionService(store, registry()) for _ in range(6)]
    outcomes: list[str] = []

    def create(service: CollectionService) -> None:
        try:
            service.create("race")
            outcomes.append("created")
        except ConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=create, args=(s,)) for s in services]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["conflict"] * 5 + ["created"]


def test_drop_deletes_the_chunks_and_forgets_the_name(store, tmp_path, registry):
    service = CollectionService(store, registry())
    service.register("filled")
    assert service.drop("filled") == 2
    assert service.names() == [] and not service.exists("filled")
    with pytest.raises(NotFoundError):
        service.drop("filled")


def test_the_json_registry_of_an_earlier_release_is_imported_once(store, tmp_path, registry):
    legacy = tmp_path / "collections.json"
    legacy.write_text(json.dumps(["kept-a", "kept-b"]), encoding="utf-8")
    service = CollectionService(store, registry(), legacy_registry=legacy)
    assert service.names() == ["filled", "kept-a", "kept-b"]
    assert not legacy.exists() and (tmp_path / "collections.json.imported").exists()
    service.drop("kept-a")
    reopened = CollectionService(store, registry(), legacy_registry=legacy)
    assert reopened.names() == ["filled", "kept-b"]  # a dropped name does not come back from the old file


def test_drop_leaves_a_tombstone_that_refuses_writers_of_before(store, tmp_path, registry):
    """Finding 4 of the red team: a writer that started before a drop does not bring the collection back."""
    dropped: list[str] = []
    service = CollectionService(store, registry(), on_drop=dropped.append)
    assert service.generation("filled") == 0
    before = service.generation("filled")
    assert service.drop("filled") == 2
    assert dropped == ["filled"]
    assert service.generation("filled") == 2  # moved when the drop started and again when it ended
    assert CollectionService(store, registry()).generation("filled") == 2  # shared by processes
    assert service.register("filled", before) is False
    assert "filled" not in service.names()
    assert service.register("filled", service.generation("filled")) is True  # a writer that started after the drop
    assert "filled" in service.names()
    service.drop("filled")
    assert service.generation("filled") == 4
    service.create("filled")  # explicit re-creation works after a drop
    assert "filled" in service.names()
    assert service.register("other") is True  # no generation given: registered as before


def _collections_store(tmp_path, collections: int) -> LanceDBDocumentStore:
    store = LanceDBDocumentStore(path=str(tmp_path / "lancedb"), embedding_dim=4)
    store.write_documents(
        [
            Document(content=f"{n} {doc} {chunk}", meta={"collection": f"c{n:02d}", "document_id": f"d{n}-{doc}"})
            for n in range(collections)
            for doc in range(1 + n % 3)
            for chunk in range(1 + n % 2)
        ]
    )
    return store


def test_listing_asks_a_grouped_counts_store_once_whatever_the_number_of_collections(tmp_path):
    for collections in (3, 30):
        store = CountingStore(_collections_store(tmp_path / str(collections), collections))
        service = CollectionService(store, tmp_path / str(collections) / "collections.db")
        service.register("created-empty")
        listed = service.list()
        assert store.calls == {"grouped_counts": 1}, store.calls
        assert listed == [service.info(name) for name in [*(f"c{n:02d}" for n in range(collections)), "created-empty"]]
        assert listed[:3] == [CollectionInfo("c00", 1, 1), CollectionInfo("c01", 2, 4), CollectionInfo("c02", 3, 3)]


def test_listing_within_a_scope_and_without_grouped_counts_gives_the_same_counts(tmp_path):
    store = _collections_store(tmp_path, 12)
    within = frozenset({"c03", "c07", "nowhere"})
    grouped = CollectionService(CountingStore(store), tmp_path / "a.db").list(within=within)
    plain_store = CountingStore(store, hide=("grouped_counts",))
    plain = CollectionService(plain_store, tmp_path / "b.db").list(within=within)
    assert grouped == plain == [CollectionInfo("c03", 1, 2), CollectionInfo("c07", 2, 4)]
    assert plain_store.calls["count_documents_by_filter"] == 2  # per collection: what the grouped count avoids


class StoreIngest:
    """An ingest stand-in that writes one chunk per file into the document store (and can remove it again)."""

    def __init__(self, store: InMemoryDocumentStore) -> None:
        self.store = store

    def ingest_bytes(self, data: bytes, filename: str, *, collection: str, **kwargs: object) -> IngestResult:
        document_id = f"{collection}-{filename}"
        meta = {"collection": collection, "document_id": document_id}
        self.store.write_documents([Document(content=data.decode(), meta=meta)])
        return IngestResult(
            document_id=document_id, filename=filename, content_type="text/plain", status="indexed", pages=1, chunks=1
        )

    def discard(self, collection: str, document_id: str) -> int:
        return int(self.store.delete_by_filter({"field": "meta.document_id", "operator": "==", "value": document_id}))


@pytest.mark.parametrize("started", ["before the drop", "during the drop"])
def test_a_job_that_runs_between_the_tombstone_and_the_cancel_does_not_bring_the_collection_back(
    store, tmp_path, started, registry
):
    """The drop's steps live in different files (collections.db, jobs.db, the store): tombstone, cancel, delete,
    closing tombstone. A job submitted before the drop, or during it, runs to its end between the first two steps:
    the collection stays dropped, holds nothing and is not registered; only a job submitted after the drop brings it
    back."""
    jobs_store = JobStore(tmp_path / "jobs.db")
    collections = CollectionService(
        store, registry(), on_drop=lambda name: run_between(name), has_jobs=jobs_store.has_unfinished
    )
    jobs = JobService(jobs_store, tmp_path / "jobs", generation_of=collections.generation)
    runner = JobRunner(
        jobs_store,
        StoreIngest(store),  # type: ignore[arg-type]
        tmp_path / "jobs",
        on_indexed=collections.register,
        generation_of=collections.generation,
    )
    upload = [UploadedFile(filename="late.txt", content_type="text/plain", data=b"written late")]
    collections.register("filled")
    before = jobs.submit("filled", {}, upload).id if started == "before the drop" else None
    ran: list[str] = []

    def run_between(name: str) -> None:  # after the tombstone, before the jobs are cancelled
        job_id = before or jobs.submit(name, {}, upload).id
        runner.run(job_id)
        ran.append(job_id)
        jobs.cancel_collection(name)

    collections.drop("filled")
    job = jobs.get(ran[0])
    if before:  # it had the old generation: it stopped at its first check and wrote nothing
        assert job.state == "cancelled" and [f.state for f in job.files] == ["skipped"]
    else:  # it ended before the drop did: dropped with the collection
        assert job.state == "done"
    assert store.count_documents_by_filter(collection_filter("filled")) == 0
    assert "filled" not in collections.names() and not collections.exists("filled")
    assert collections.register("filled", job.generation) is False  # its writer stays refused

    after = jobs.submit("filled", {}, [UploadedFile(filename="after.txt", content_type="text/plain", data=b"new")])
    collections.on_drop = None
    runner.run(after.id)
    assert jobs.get(after.id).state == "done"
    assert store.count_documents_by_filter(collection_filter("filled")) == 1 and "filled" in collections.names()


def test_a_collection_known_only_through_its_queued_job_can_be_dropped(store, tmp_path, registry):
    jobs_store = JobStore(tmp_path / "jobs.db")
    collections = CollectionService(
        store, registry(), on_drop=jobs_store.cancel_collection, has_jobs=jobs_store.has_unfinished
    )
    jobs = JobService(jobs_store, tmp_path / "jobs", generation_of=collections.generation)
    job = jobs.submit("fresh", {}, [UploadedFile(filename="a.txt", content_type="text/plain", data=b"a")])
    assert not collections.exists("fresh")
    assert collections.drop("fresh") == 0
    assert jobs.get(job.id).state == "cancelled" and collections.generation("fresh") == 2
    with pytest.raises(NotFoundError):
        collections.drop("fresh")  # nothing left of it: 404 again


def test_a_writer_registering_while_another_host_drops_never_brings_the_collection_back(store, registry):
    """The generation check and the registration are one transaction holding the generation's row: a drop on another
    host waits for it (and then forgets the registration), never the other way round."""
    writer_host, dropping_host = CollectionService(store, registry()), CollectionService(store, registry())
    before = writer_host.generation("filled")
    checked, go_on = threading.Event(), threading.Event()
    lock_generation = CollectionService._lock_generation

    def slow_check(db, name, now):  # the writer is slow between its check and its registration
        generation = lock_generation(db, name, now)
        checked.set()
        go_on.wait(10)
        return generation

    writer_host._lock_generation = slow_check  # type: ignore[method-assign]
    registered: list[bool] = []
    writer = threading.Thread(target=lambda: registered.append(writer_host.register("filled", before)))
    writer.start()
    assert checked.wait(10)
    dropper = threading.Thread(target=dropping_host.drop, args=("filled",))
    dropper.start()
    dropper.join(0.5)
    assert dropper.is_alive()  # the drop waits for the writer's transaction
    go_on.set()
    writer.join(10)
    dropper.join(30)
    assert registered == [True] and "filled" not in dropping_host.names() and dropping_host.generation("filled") == 2


def test_collections_record_their_tenant_and_names_stay_unique_across_tenants(store, registry):
    service = CollectionService(store, registry())
    service.create("apples", tenant="acme")
    service.claim("pears", "acme")  # an upload of acme creates its collection
    service.claim("pears", "acme")  # idempotent for the same tenant
    service.register("bananas", tenant="globex")
    service.register("legacy")
    other = CollectionService(store, registry())  # another process or host
    assert [other.tenant_of(n) for n in ("apples", "pears", "bananas", "legacy", "filled", "nothing")] == [
        "acme",
        "acme",
        "globex",
        "",
        "",
        "",
    ]
    for name in ("apples", "bananas", "legacy", "filled"):  # another tenant's, or without tenant (registered or not)
        with pytest.raises(ConflictError) as conflict:
            other.claim(name, "globex" if name != "bananas" else "acme")
        assert conflict.value.message == f"collection {name!r} already exists"  # whose: not said
    with pytest.raises(ConflictError):
        other.create("bananas", tenant="acme")
    other.register("apples", tenant="globex")  # a late writer never moves a collection to another tenant
    assert other.tenant_of("apples") == "acme"
    for name in ("legacy", "filled", "brand-new"):  # a key without tenant writes into collections without tenant
        other.claim(name, None)
    assert "brand-new" not in other.names()  # registered once something is written, as before
    with pytest.raises(ConflictError, match="collection 'apples' already exists"):
        other.claim("apples", None)


def test_a_keys_boundary_holds_its_tenants_collections(store, registry):
    from app.services.api_keys import ApiKey, Role

    service = CollectionService(store, registry())
    service.create("apples", tenant="acme")
    service.create("bananas", tenant="globex")
    service.create("plain")

    def bound(role: Role, tenant: str | None) -> ApiKey:
        return service.bound(ApiKey("k", "k", role, None, "", tenant=tenant))

    acme = bound(Role.READER, "acme")
    assert [n for n in ("apples", "bananas", "plain", "filled") if acme.allows(n)] == ["apples"]
    untenanted = bound(Role.WRITER, None)
    assert [n for n in ("apples", "bananas", "plain", "filled") if untenanted.allows(n)] == ["plain", "filled"]
    operator = bound(Role.ADMIN, None)
    assert operator.boundary is None and all(operator.allows(n) for n in ("apples", "bananas", "plain"))
    acme_admin = bound(Role.ADMIN, "acme")  # a tenant admin is no operator
    assert not acme_admin.allows("bananas")
