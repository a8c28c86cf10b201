"""Documents are versions of sources, on both stores (LanceDB, the default profile, and pgvector): new content for a
file name replaces the document atomically under its id, only chunks whose embedded text changed are embedded again,
and the same content again is `unchanged`."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from haystack import Document

from app.composition import ingest_service, load_pipeline_set
from app.pipeline_loader import PipelineSet
from app.services.ingest import IngestService
from app.services.naming import document_id_for
from app.settings import Settings
from app.testing.crafted_pdfs import text_pdf

pytestmark = pytest.mark.integration

STORE_PROFILES = [
    pytest.param("default", id="lancedb"),
    pytest.param("pgvector", id="pgvector", marks=pytest.mark.postgres),
]


@dataclass
class Indexing:
    pipelines: PipelineSet
    ingest: IngestService
    embedded: list[Document]  # every chunk the document embedder received


@pytest.fixture(scope="module", params=STORE_PROFILES)
def indexing(request, tmp_path_factory, make_tiny_profile) -> Iterator[Indexing]:
    with pytest.MonkeyPatch.context() as patch:
        if request.param == "pgvector":
            patch.setenv("PG_CONN_STR", request.getfixturevalue("pg_dsn"))
        root = tmp_path_factory.mktemp("versions")
        settings = Settings(
            data_dir=root / "data",
            pipelines_dir=make_tiny_profile(root / "pipelines", profile=request.param),
            rate_limit="off",
        )
        pipelines = load_pipeline_set(settings)
        embedded: list[Document] = []
        embedder = pipelines.indexing.pipeline.get_component("embedder")
        run = embedder.run

        def counting_run(documents: list[Document], *args: Any, **kwargs: Any) -> Any:
            embedded.extend(documents)
            return run(documents, *args, **kwargs)

        embedder.run = counting_run
        yield Indexing(pipelines, ingest_service(settings, pipelines), embedded)


def _chunks(indexing: Indexing, collection: str) -> list[Document]:
    return indexing.pipelines.document_store.filter_documents(
        {"field": "meta.collection", "operator": "==", "value": collection}
    )


def _paragraphs(count: int, changed: int | None = None) -> bytes:
    """Paragraphs of about 700 characters (one chunk each); `changed`: the paragraph whose text differs."""
    paragraphs = []
    for index in range(count):
        word = "modified" if index == changed else "original"  # same length: chunk bounds stay
        sentence = f"Paragraph {index} of the keeper's log is {word}: the lamp burned through watch {index}. "
        paragraphs.append((sentence * 12).strip())
    return "\n\n".join(paragraphs).encode()


def test_new_content_under_the_same_name_is_a_new_version_that_reuses_unchanged_chunks(indexing):
    first = indexing.ingest.ingest_bytes(_paragraphs(6), "log.txt", collection="edits")
    assert (first.status, first.version, first.source_id) == ("indexed", 1, "log.txt")
    assert first.chunks_added == first.chunks and first.chunks_unchanged == 0
    before = _chunks(indexing, "edits")
    assert {c.meta["version"] for c in before} == {1} and {c.meta["source_id"] for c in before} == {"log.txt"}
    indexing.embedded.clear()

    second = indexing.ingest.ingest_bytes(_paragraphs(6, changed=2), "log.txt", collection="edits")

    assert (second.status, second.version, second.document_id) == ("updated", 2, first.document_id)
    after = _chunks(indexing, "edits")
    assert {c.meta["document_id"] for c in after} == {first.document_id}  # one document
    assert {c.meta["version"] for c in after} == {2}  # the old version's chunks are gone
    assert len(after) == second.chunks
    assert sum("modified" in c.content for c in after) >= 1 and not any(
        "Paragraph 2 of the keeper's log is original" in c.content for c in after
    )
    assert 1 <= len(indexing.embedded) <= 2 < second.chunks  # only the chunks holding the changed paragraph
    assert all("modified" in c.content for c in indexing.embedded)
    assert second.chunks_added == len(indexing.embedded)
    assert second.chunks_unchanged == second.chunks - second.chunks_added > 0
    assert second.chunks_removed >= 1
    current = indexing.ingest.source("edits", "log.txt")
    assert current is not None and (current.version, current.document_id) == (2, first.document_id)
    assert current.previous_hash is not None and current.previous_hash != current.content_hash


def test_the_same_content_again_is_unchanged_and_replace_makes_a_version_without_embedding(indexing):
    data = _paragraphs(3)
    first = indexing.ingest.ingest_bytes(data, "same.txt", collection="same")
    indexing.embedded.clear()
    again = indexing.ingest.ingest_bytes(data, "same.txt", collection="same")
    assert (again.status, again.version, again.document_id) == ("unchanged", 1, first.document_id)
    assert again.chunks == 0 and indexing.embedded == []
    replaced = indexing.ingest.ingest_bytes(data, "same.txt", collection="same", replace=True)
    assert (replaced.status, replaced.version, replaced.document_id) == ("updated", 2, first.document_id)
    assert indexing.embedded == [] and replaced.chunks_unchanged == replaced.chunks == first.chunks
    assert {c.meta["version"] for c in _chunks(indexing, "same")} == {2}
    # the same bytes under another source of the collection: a duplicate, nothing written
    other = indexing.ingest.ingest_bytes(data, "copy.txt", collection="same")
    assert other.status == "duplicate" and len(_chunks(indexing, "same")) == first.chunks


def test_the_same_bytes_are_a_duplicate_only_under_the_same_access_list(indexing):
    """`duplicate` would tell a writer that bytes it holds are a document it may not read: under another access list
    (which the writer could not grant) the same bytes are a document of their own."""
    data = _paragraphs(2)
    hidden = indexing.ingest.ingest_bytes(data, "board.txt", collection="acl-dup", access=["group:board"])
    public = indexing.ingest.ingest_bytes(data, "leaked.txt", collection="acl-dup")
    assert (public.status, public.version) == ("indexed", 1) and public.document_id != hidden.document_id
    chunks = _chunks(indexing, "acl-dup")
    assert {c.meta["document_id"]: c.meta["acl"] for c in chunks} == {
        hidden.document_id: hidden_acl(chunks, hidden.document_id),
        public.document_id: "public",
    }
    same = indexing.ingest.ingest_bytes(data, "minutes.txt", collection="acl-dup", access=["group:board"])
    assert (same.status, same.document_id) == ("duplicate", hidden.document_id)
    # a new version of a public source whose bytes are the restricted document's: a version, not a duplicate of it
    secret = _paragraphs(3)
    board = indexing.ingest.ingest_bytes(secret, "plan.txt", collection="acl-dup", access=["group:board"])
    notes = indexing.ingest.ingest_bytes(b"Notes of the harbour board.", "notes.txt", collection="acl-dup")
    updated = indexing.ingest.ingest_bytes(secret, "notes.txt", collection="acl-dup")
    assert (updated.status, updated.version, updated.document_id) == ("updated", 2, notes.document_id)
    # while a restricted source's new version keeps its list and so is a duplicate of the restricted twin
    indexing.ingest.ingest_bytes(b"Agenda of the board.", "agenda.txt", collection="acl-dup", access=["group:board"])
    agenda = indexing.ingest.ingest_bytes(secret, "agenda.txt", collection="acl-dup")
    assert (agenda.status, agenda.document_id) == ("duplicate", board.document_id)


def hidden_acl(chunks: list[Document], document_id: str) -> str:
    [acl] = {c.meta["acl"] for c in chunks if c.meta["document_id"] == document_id}
    assert acl != "public"
    return str(acl)


def test_replace_indexes_a_document_from_before_the_registry_again_as_its_next_version(indexing):
    """`rag ingest --replace` of a document indexed before sources and access lists existed (chunks without registry
    row, `version`, `acl` or `tenant`): its chunks are written again with today's metadata (how such chunks become
    visible to scoped keys on Pinecone), not answered `duplicate`."""
    data = b"Harbour dues are paid at the pier office before noon."
    seed = indexing.ingest.ingest_bytes(b"Any other text about the pier.", "seed.txt", collection="legacy")
    [template] = [c for c in _chunks(indexing, "legacy") if c.meta["document_id"] == seed.document_id]
    document_id = document_id_for("legacy", hashlib.sha256(data).hexdigest())
    old = Document(
        content=data.decode(),
        embedding=template.embedding,
        meta={"collection": "legacy", "document_id": document_id, "file_name": "dues.txt", "content_type": "txt"},
    )
    indexing.pipelines.document_store.write_documents([old])
    again = indexing.ingest.ingest_bytes(data, "dues.txt", collection="legacy", replace=True)
    assert (again.status, again.version, again.document_id) == ("updated", 2, document_id), again
    plain = indexing.ingest.ingest_bytes(data, "dues.txt", collection="legacy")
    assert (plain.status, plain.version, plain.document_id) == ("unchanged", 2, document_id)
    chunks = [c for c in _chunks(indexing, "legacy") if c.meta["document_id"] == document_id]
    assert chunks and {(c.meta.get("version"), c.meta.get("acl"), c.meta.get("tenant")) for c in chunks} == {
        (2, "public", "")
    }


def test_a_caller_source_id_and_remove_source(indexing):
    one = indexing.ingest.ingest_bytes(b"Alpha notes about harbours.", "a.txt", collection="ids", source_id="s3://b/a")
    two = indexing.ingest.ingest_bytes(b"Beta notes about harbours.", "b.txt", collection="ids", source_id="s3://b/a")
    assert (one.status, two.status, two.version, two.document_id) == ("indexed", "updated", 2, one.document_id)
    assert {c.meta["file_name"] for c in _chunks(indexing, "ids")} == {"b.txt"}
    assert indexing.ingest.remove_source("ids", "s3://b/a") == two.chunks
    assert _chunks(indexing, "ids") == [] and indexing.ingest.source("ids", "s3://b/a") is None
    assert indexing.ingest.remove_source("ids", "s3://b/a") == 0
    again = indexing.ingest.ingest_bytes(
        b"Alpha notes about harbours.", "a.txt", collection="ids", source_id="s3://b/a"
    )
    assert (again.status, again.version) == ("indexed", 1)


def _book(pages: int, changed: int | None = None) -> bytes:
    return text_pdf(
        [
            [
                f"Page {page} of the harbour manual, line {line}: {'amended' if page == changed else 'as printed'} "
                f"rule {page * 31 + line} for the tug crews."
                for line in range(10)
            ]
            for page in range(pages)
        ]
    )


def test_editing_one_page_of_a_100_page_pdf_embeds_only_that_page(indexing):
    first = indexing.ingest.ingest_bytes(_book(100), "manual.pdf", collection="book")
    assert first.status == "indexed" and first.pages == 100
    page_chunks = [c for c in _chunks(indexing, "book") if c.meta.get("page") == 43]
    indexing.embedded.clear()

    second = indexing.ingest.ingest_bytes(_book(100, changed=42), "manual.pdf", collection="book")

    assert (second.status, second.version) == ("updated", 2)
    assert indexing.embedded and {c.meta.get("page") for c in indexing.embedded} == {43}  # pages count from 1
    assert len(indexing.embedded) == len(page_chunks) == second.chunks_added == second.chunks_removed
    assert second.chunks_unchanged == second.chunks - len(page_chunks)
    assert len(_chunks(indexing, "book")) == first.chunks


def test_queries_during_a_replacement_see_one_version(indexing):
    store = indexing.pipelines.document_store
    first = indexing.ingest.ingest_bytes(_paragraphs(8), "live.txt", collection="live")
    stop = threading.Event()
    seen: list[set[int]] = []
    query = {"field": "meta.collection", "operator": "==", "value": "live"}

    def read() -> None:
        while not stop.is_set():
            seen.append({c.meta["version"] for c in store.filter_documents(query)})

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for version in range(2, 6):
            result = indexing.ingest.ingest_bytes(_paragraphs(8, changed=version), "live.txt", collection="live")
            assert (result.status, result.version, result.document_id) == ("updated", version, first.document_id)
    finally:
        stop.set()
        reader.join(30)
    assert len(seen) > 1
    assert all(len(versions) == 1 for versions in seen), [v for v in seen if len(v) != 1]
    assert {c.meta["version"] for c in store.filter_documents(query)} == {5}


def test_an_upload_stands_for_the_callers_own_copy_of_a_source_id_it_cannot_read(indexing):
    """`own_source`: the id itself while the caller reads its document (or nobody holds it); a copy of the id when the
    id's document is hidden from the caller, so its upload never replaces (or confirms) the hidden one."""
    from app.services.access import PUBLIC_ACL
    from app.services.naming import public_source_id, source_copy
    from app.services.visibility import acl_condition

    public_only = acl_condition([PUBLIC_ACL])
    ingest = indexing.ingest
    assert ingest.own_source("owned", "plan.txt", visibility=public_only) == "plan.txt"  # nobody holds it
    hidden = ingest.ingest_bytes(_paragraphs(1), "plan.txt", collection="owned", access=["user:alice"])
    assert hidden.status == "indexed"
    assert ingest.own_source("owned", "plan.txt", visibility=None) == "plan.txt"  # the operator reads every document
    copy = ingest.own_source("owned", "plan.txt", visibility=public_only)
    assert copy == source_copy("plan.txt", 2) and copy != "plan.txt" and public_source_id(copy) == "plan.txt"
    mine = ingest.ingest_bytes(_paragraphs(2), "plan.txt", collection="owned", source_id=copy)
    assert mine.status == "indexed" and mine.document_id != hidden.document_id
    assert ingest.own_source("owned", "plan.txt", visibility=public_only) == copy  # its own copy, readable: the same
