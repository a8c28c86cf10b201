"""FileService on both state backends (`state_url`): stored once by content, cursor pages, scope of restricted keys."""

from __future__ import annotations

import pytest

from app.blobs import LocalBlobStore
from app.errors import InvalidInputError, NotFoundError, PayloadTooLargeError, PermissionDeniedError
from app.services import files
from app.services.api_keys import ApiKey, Role
from app.services.files import FileService


def _key(key_id: str, collections: frozenset[str] | None = None) -> ApiKey:
    return ApiKey(id=key_id, name=key_id, role=Role.WRITER, collections=collections, created_at="now")


@pytest.fixture
def service(open_state, tmp_path) -> FileService:
    return FileService(open_state(files, "files", "files.db"), LocalBlobStore(tmp_path / "blobs"), max_bytes=100)


def test_the_same_bytes_are_stored_once_and_removed_with_the_last_file(service, tmp_path):
    first = service.create(b"hello", "a.txt", "assistants")
    second = service.create(b"hello", "b.txt", "user_data")
    assert first.id != second.id and first.sha256 == second.sha256 and first.bytes == 5
    assert len([p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]) == 1
    assert service.content(second.id)[1] == b"hello"
    service.delete(first.id)
    assert service.content(second.id)[1] == b"hello"
    service.delete(second.id)
    assert not [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
    with pytest.raises(NotFoundError):
        service.get(second.id)


def test_refusals(service):
    with pytest.raises(InvalidInputError, match="purpose"):
        service.create(b"x", "a.txt", "fine-tune")
    with pytest.raises(PayloadTooLargeError):
        service.create(b"x" * 101, "a.txt", "assistants")
    assert service.create(b"x", "../../etc/passwd\x1b[2J", "assistants").filename == "passwd[2J"


def test_pages_follow_the_cursor_in_both_orders(service):
    ids = [service.create(f"file {n}".encode(), f"{n}.txt", "assistants").id for n in range(5)]
    page, more = service.list(limit=2, order="asc")
    assert [f.id for f in page] == ids[:2] and more
    page, more = service.list(limit=2, order="asc", after=ids[1])
    assert [f.id for f in page] == ids[2:4] and more
    page, more = service.list(limit=10, order="asc", after=ids[3])
    assert [f.id for f in page] == ids[4:] and not more
    page, _ = service.list(limit=2, order="desc")
    assert [f.id for f in page] == ids[::-1][:2]
    with pytest.raises(InvalidInputError):
        service.list(limit=0)


def test_a_restricted_key_sees_its_own_files_and_those_of_its_stores(service):
    attached: dict[str, list[str]] = {}
    service.attached_to = lambda file_id: attached.get(file_id, [])
    service.attached_within = lambda stores: [f for f, s in attached.items() if set(s) & stores]
    mine = service.create(b"mine", "m.txt", "assistants", _key("alpha-key", frozenset({"alpha"})))
    theirs = service.create(b"theirs", "t.txt", "assistants", _key("admin"))
    in_alpha = service.create(b"in alpha", "a.txt", "assistants", _key("admin"))
    attached[in_alpha.id] = ["alpha"]
    scoped = _key("alpha-key", frozenset({"alpha"}))
    assert {f.id for f in service.list(scoped)[0]} == {mine.id, in_alpha.id}
    assert {f.id for f in service.list(_key("admin"))[0]} == {mine.id, theirs.id, in_alpha.id}
    assert service.get(in_alpha.id, scoped).id == in_alpha.id
    with pytest.raises(PermissionDeniedError):
        service.get(theirs.id, scoped)
    with pytest.raises(PermissionDeniedError):
        service.delete(theirs.id, scoped)


def test_file_contents_live_beside_the_job_spool_never_in_it(tmp_path):
    from app.composition import file_blob_store, file_blob_url
    from app.settings import Settings

    assert file_blob_store(Settings(data_dir=tmp_path)).where == str(tmp_path / "files")
    assert file_blob_url("s3://bucket/spool") == "s3://bucket/spool-files"
    assert file_blob_url("s3://bucket") == "s3://bucket/ragstack-files"
