"""Exactly once per document: uploads of the same bytes claim one registry row before indexing, on SQLite and on
PostgreSQL (`state_url`); two IngestService instances on one database are two hosts. A twin that finds the document
indexed answers `duplicate`, one that finds it being indexed waits, and only the claim holder removes chunks."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from haystack import Document
from haystack.document_stores.in_memory import InMemoryDocumentStore

from app.errors import ExtractionError
from app.services import collections as collections_module
from app.services import registry as registry_module
from app.services.collections import CollectionService, collection_filter
from app.services.documents import DocumentService
from app.services.ingest import IngestService
from app.services.naming import document_id_for
from app.services.registry import DocumentRegistry

DATA = b"The lighthouse keeper lights the lamp at dusk and logs every passing ship."
DOCUMENT_ID = document_id_for("c", hashlib.sha256(DATA).hexdigest())
CHUNKS = 3  # what one clean ingest of DATA writes


class TwinIngest(IngestService):
    """An IngestService whose indexing writes CHUNKS chunks of its own (a second write would double them): it can wait
    before and after writing, and fail after writing part of them."""

    def __init__(self, store: InMemoryDocumentStore, registry: DocumentRegistry | None, **kwargs: Any) -> None:
        super().__init__(SimpleNamespace(document_store=store), registry=registry, **kwargs)  # type: ignore[arg-type]
        self.entered = threading.Event()
        self.before_write: threading.Event | None = None
        self.after_write: threading.Event | None = None
        self.fail_after = None  # write this many chunks, then raise
        self.runs = 0

    def _index(self, data, name, mime, collection, document_id, content_hash, tags, split=None, chunk_meta=None):  # type: ignore[no-untyped-def]
        self.runs += 1
        self.entered.set()
        if self.before_write is not None:
            assert self.before_write.wait(30)
        writer = uuid.uuid4().hex  # each run's chunks are its own: indexing twice doubles them
        count = CHUNKS if self.fail_after is None else self.fail_after
        self.store.write_documents(
            [
                Document(
                    content=f"{data.decode()} {i}",
                    meta={"collection": collection, "document_id": document_id, "writer": writer},
                )
                for i in range(count)
            ]
        )
        if self.after_write is not None:
            assert self.after_write.wait(30)
        if self.fail_after is not None:
            raise ExtractionError(f"{name}: the parser broke")
        return 1, CHUNKS


@pytest.fixture
def store() -> InMemoryDocumentStore:
    return InMemoryDocumentStore()


@pytest.fixture
def registries(open_state):
    """Factory: another DocumentRegistry on the test's tables (another host on PostgreSQL)."""
    return lambda lease=30.0: DocumentRegistry(
        open_state(registry_module, "documents", "documents.db"), lease_seconds=lease
    )


def _chunks(store: InMemoryDocumentStore, collection: str = "c") -> int:
    return store.count_documents_by_filter(collection_filter(collection))


def _upload(service: IngestService, results: list, data: bytes = DATA) -> threading.Thread:
    thread = threading.Thread(target=lambda: results.append(service.ingest_bytes(data, "keeper.txt", collection="c")))
    thread.start()
    return thread


@pytest.mark.parametrize("hosts", [1, 2])
def test_concurrent_twins_index_the_document_once(store, registries, hosts):
    services = [TwinIngest(store, registries()) for _ in range(hosts)]
    first, second = services[0], services[-1]
    both_in = threading.Barrier(2, timeout=1.0)  # today's code: both pass the duplicate check and both index

    def index_together(service: TwinIngest) -> None:
        original = service._index

        def held(*args: Any, **kwargs: Any) -> Any:
            try:
                both_in.wait()
            except threading.BrokenBarrierError:
                pass
            return original(*args, **kwargs)

        service._index = held  # type: ignore[method-assign]

    for service in {id(s): s for s in services}.values():
        index_together(service)
    results: list = []
    threads = [_upload(first, results), _upload(second, results)]
    for thread in threads:
        thread.join(30)
    assert sorted(r.status for r in results) == ["indexed", "unchanged"]
    assert _chunks(store) == CHUNKS
    assert sum(s.runs for s in {id(s): s for s in services}.values()) == 1


def test_a_failing_twin_never_removes_the_chunks_of_the_one_that_succeeded(store, registries):
    succeeding, failing = TwinIngest(store, registries()), TwinIngest(store, registries())
    succeeding.before_write = threading.Event()
    failing.before_write, failing.fail_after = threading.Event(), 0
    results: list = []
    first = _upload(succeeding, results)
    assert succeeding.entered.wait(10)
    second = _upload(failing, results)
    failing.entered.wait(1.0)  # today's code: the twin indexes too; now it waits for the holder
    succeeding.before_write.set()
    first.join(30)
    failing.before_write.set()  # it fails now, after the other wrote everything
    second.join(30)
    assert sorted(r.status for r in results) == ["indexed", "unchanged"]
    assert _chunks(store) == CHUNKS and failing.runs == 0


def test_a_twin_takes_over_when_the_holder_fails_and_the_holder_removes_only_its_own_part(store, registries):
    failing, waiting = TwinIngest(store, registries()), TwinIngest(store, registries())
    failing.after_write, failing.fail_after = threading.Event(), 2  # writes 2 chunks, then breaks
    results: list = []
    first = _upload(failing, results)
    assert failing.entered.wait(10)
    second = _upload(waiting, results)
    time.sleep(0.3)
    assert waiting.runs == 0  # it waits while the holder indexes
    failing.after_write.set()
    first.join(30)
    second.join(30)
    statuses = {r.status for r in results}
    assert statuses == {"failed", "indexed"} and _chunks(store) == CHUNKS and waiting.runs == 1


def test_the_document_of_a_crashed_holder_is_taken_over_once_its_lease_runs_out(store, registries):
    document_id = DOCUMENT_ID
    crashed = registries(lease=0.5).claim("c", document_id)  # claimed, then the process was killed: never renewed
    assert crashed is not None
    meta = {"collection": "c", "document_id": document_id}
    store.write_documents([Document(content="partial", meta=meta)])  # what it wrote before it died
    service = TwinIngest(store, registries())
    started = time.monotonic()
    result = service.ingest_bytes(DATA, "keeper.txt", collection="c")
    assert result.status == "indexed" and _chunks(store) == CHUNKS
    assert time.monotonic() - started >= 0.3  # it waited for the lease
    assert not registries().finish(crashed, indexed=True)  # the dead owner's late write changes nothing


def test_a_twin_that_waits_too_long_reports_the_file_busy(store, registries):
    holder = registries().claim("c", DOCUMENT_ID)
    assert holder is not None
    service = TwinIngest(store, registries(), twin_wait_seconds=0.3)
    result = service.ingest_bytes(DATA, "keeper.txt", collection="c")
    assert result.status == "failed" and result.error_code == "document_busy" and service.runs == 0


def test_a_document_indexed_before_the_registry_existed_is_a_duplicate(store, registries):
    document_id = DOCUMENT_ID
    store.write_documents([Document(content="old", meta={"collection": "c", "document_id": document_id})])
    service = TwinIngest(store, registries())
    assert service.ingest_bytes(DATA, "keeper.txt", collection="c").status == "duplicate"
    assert service.runs == 0 and registries().state("c", document_id) == ("indexed", False)


def test_discard_leaves_a_live_holders_chunks_and_lets_a_removed_document_be_indexed_again(store, registries):
    service = TwinIngest(store, registries())
    result = service.ingest_bytes(DATA, "keeper.txt", collection="c")
    assert result.status == "indexed"
    assert service.discard("c", result.document_id) == CHUNKS  # a job runs the file again from scratch
    assert service.ingest_bytes(DATA, "keeper.txt", collection="c").status == "indexed" and _chunks(store) == CHUNKS

    other = TwinIngest(store, registries())
    other.before_write = threading.Event()
    results: list = []
    store.delete_by_filter(collection_filter("c"))
    registries().forget_collection("c")
    holder = _upload(other, results)
    assert other.entered.wait(10)
    assert service.discard("c", result.document_id) == 0  # another upload holds it: its chunks are its own
    other.before_write.set()
    holder.join(30)
    assert results[0].status == "indexed" and _chunks(store) == CHUNKS


def test_deleting_a_document_or_dropping_its_collection_forgets_it(store, registries, open_state):
    service = TwinIngest(store, registries())
    documents = DocumentService(store, registry=registries())
    collections = CollectionService(
        store, open_state(collections_module, "collections", "collections.db"), documents=registries()
    )
    result = service.ingest_bytes(DATA, "keeper.txt", collection="c")
    assert documents.delete(result.document_id) == CHUNKS
    assert registries().state("c", result.document_id) is None
    assert service.ingest_bytes(DATA, "keeper.txt", collection="c").status == "indexed"  # not a duplicate
    assert collections.drop("c") == CHUNKS
    assert registries().state("c", result.document_id) is None
    assert service.ingest_bytes(DATA, "keeper.txt", collection="c").status == "indexed"


def test_claims_are_fenced(registries):
    first, second = registries(lease=0.2), registries()
    claim = first.claim("c", "d")
    assert claim is not None and claim.first and second.claim("c", "d") is None
    time.sleep(0.3)
    taken = second.claim("c", "d")
    assert taken is not None and taken.fence == claim.fence + 1
    assert not first.renew(claim) and not first.finish(claim, indexed=False) and not first.release(claim)
    assert second.finish(taken, indexed=True) and second.claim("c", "d") is None
    assert second.claim("c", "d", take_indexed=True) is not None


@pytest.fixture(scope="module")
def tiny_pipelines(tmp_path_factory, make_tiny_profile):
    """The shipped indexing pipeline (tiny profile) over a LanceDB store of this module's own."""
    from app.composition import load_pipeline_set
    from app.settings import Settings

    root = tmp_path_factory.mktemp("registry-pipelines")
    settings = Settings(data_dir=root / "data", pipelines_dir=make_tiny_profile(root / "pipelines"))
    pipelines = load_pipeline_set(settings)
    pipelines.indexing.pipeline.warm_up()
    return pipelines


@pytest.mark.integration
def test_two_hosts_uploading_the_same_file_index_it_once_through_the_real_pipeline(
    tiny_pipelines, registries, state_url
):
    text = "\n\n".join(f"Section {n}: the keeper logs ship {n} passing the cape at dusk." for n in range(40)).encode()
    collection = f"twins-{'pg' if state_url else 'sqlite'}"
    clean = IngestService(tiny_pipelines, registry=registries()).ingest_bytes(
        text, "clean.txt", collection="clean-" + collection
    )
    assert clean.status == "indexed" and clean.chunks > 1
    hosts = [IngestService(tiny_pipelines, registry=registries()) for _ in range(2)]
    results: list = []
    threads = [
        threading.Thread(target=lambda h=h: results.append(h.ingest_bytes(text, "log.txt", collection=collection)))
        for h in hosts
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(r.status for r in results) == ["indexed", "unchanged"]
    store = tiny_pipelines.document_store
    assert store.count_documents_by_filter(collection_filter(collection)) == clean.chunks


def test_a_waiting_twin_can_be_stopped_by_its_caller(store, registries):
    from app.services.ingest import on_twin_wait

    holder = registries().claim("c", DOCUMENT_ID)
    assert holder is not None
    service = TwinIngest(store, registries())
    waits: list[int] = []

    def stop_on_the_third_wait() -> None:  # a job runner: the job was cancelled, or the worker stops
        waits.append(1)
        if len(waits) == 3:
            raise InterruptedError("stopping")

    with on_twin_wait(stop_on_the_third_wait), pytest.raises(InterruptedError):
        service.ingest_bytes(DATA, "keeper.txt", collection="c")
    assert len(waits) == 3 and service.runs == 0 and registries().state("c", DOCUMENT_ID) == ("indexing", True)


def test_a_holder_indexing_longer_than_its_lease_keeps_its_claim(store, registries):
    slow, twin = TwinIngest(store, registries(lease=0.3)), TwinIngest(store, registries(lease=0.3))
    slow.before_write = threading.Event()
    results: list = []
    holder = _upload(slow, results)
    assert slow.entered.wait(10)
    waiting = _upload(twin, results)
    time.sleep(1.2)  # four leases: renewed every third of one
    assert twin.runs == 0
    slow.before_write.set()
    holder.join(30)
    waiting.join(30)
    assert sorted(r.status for r in results) == ["indexed", "unchanged"] and _chunks(store) == CHUNKS
