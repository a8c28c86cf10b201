"""Sync runs of a folder source through the job worker, on SQLite and PostgreSQL: added / updated / unchanged /
removed / failed outcomes and the ingest calls behind them, globs, one run at a time, cancel, retry, and a run stopped
mid-way that resumes without ingesting anything twice."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from app.errors import ConflictError
from app.jobs import JobRunner
from app.sync.models import Outcome, SourceKind
from app.testing.sync import SyncRig, WorkerDied, sync_rig


def write(root: Path, name: str, text: str, mtime: float | None = None) -> Path:
    path = root / "docs" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def outcomes(rig: SyncRig, run_id: str) -> dict[str, str]:
    return {e.key: e.outcome.value for e in rig.sources.run_entries(run_id)}


def folder_source(rig: SyncRig, root: Path, **kwargs):
    return rig.sources.create(collection="c", kind=SourceKind.FOLDER, location=str(root / "docs"), **kwargs)


def sync(rig: SyncRig, run_jobs, source_id: str) -> str:
    run = rig.sources.start_run(source_id)
    run_jobs()
    return run.id


def test_a_folder_is_synced_and_each_change_has_its_outcome_and_only_its_ingest(rig, root, run_jobs):
    write(root, "a.txt", "alpha", mtime=1000)
    write(root, "b.txt", "bravo", mtime=1000)
    write(root, "sub/c.md", "charlie", mtime=1000)
    source = folder_source(rig, root, access=["group:eng"])
    first = sync(rig, run_jobs, source.id)
    ingest = rig.of("c")
    assert outcomes(rig, first) == {"a.txt": "added", "b.txt": "added", "sub/c.md": "added"}
    assert sorted(ingest.ingested()) == ["a.txt", "b.txt", "sub/c.md"]
    assert {d.access == ["group:eng"] for d in ingest.documents.values()} == {True}  # the source's access passed on
    run = rig.sources.run(first)
    assert run.state == "done" and run.counts["added"] == 3
    job = rig.jobs.get(first)
    assert job.state == "done" and job.files[0].pages_done == 3  # the job's progress counts entries

    # edit a (new mtime), touch b (new mtime, same bytes), delete c, add d
    ingest.calls.clear()
    write(root, "a.txt", "alpha two", mtime=2000)
    write(root, "b.txt", "bravo", mtime=2000)
    (root / "docs" / "sub" / "c.md").unlink()
    write(root, "d.txt", "delta", mtime=2000)
    second = sync(rig, run_jobs, source.id)
    assert outcomes(rig, second) == {"a.txt": "updated", "b.txt": "unchanged", "sub/c.md": "removed", "d.txt": "added"}
    assert sorted(ingest.calls) == [("ingest", "a.txt"), ("ingest", "d.txt"), ("remove", "sub/c.md")]
    assert ingest.documents["a.txt"].version == 2 and "sub/c.md" not in ingest.documents

    # nothing changed: no read, no ingest
    ingest.calls.clear()
    third = sync(rig, run_jobs, source.id)
    assert set(outcomes(rig, third).values()) == {"unchanged"} and ingest.calls == []
    runs, total = rig.sources.runs(source.id)
    assert total == 3 and [r.id for r in runs] == [third, second, first]  # newest first


def test_same_metadata_is_not_read_again(rig, root, run_jobs, monkeypatch):
    write(root, "a.txt", "alpha", mtime=1000)
    source = folder_source(rig, root)
    sync(rig, run_jobs, source.id)
    reads: list[str] = []
    from app.sync import listing

    original = listing.FolderLister.read
    monkeypatch.setattr(listing.FolderLister, "read", lambda self, e, p: reads.append(e.key) or original(self, e, p))
    sync(rig, run_jobs, source.id)
    assert reads == []
    write(root, "a.txt", "alpha", mtime=3000)  # same bytes, new mtime: read and hashed, not ingested
    run = sync(rig, run_jobs, source.id)
    assert reads == ["a.txt"] and outcomes(rig, run) == {"a.txt": "unchanged"}
    assert rig.of("c").ingested() == ["a.txt"]


def test_globs_select_entries_and_excluded_files_count_as_gone(rig, root, run_jobs):
    for name in ("a.pdf", "b.txt", "drafts/c.pdf", "sub/d.pdf"):
        write(root, name, name)
    source = folder_source(rig, root, include=["*.pdf"], exclude=["drafts/**"])
    run = sync(rig, run_jobs, source.id)
    assert outcomes(rig, run) == {"a.pdf": "added", "sub/d.pdf": "added"}
    rig.sources.update(source.id, exclude=["sub/*"])  # drafts now included, sub excluded
    run = sync(rig, run_jobs, source.id)
    assert outcomes(rig, run) == {"a.pdf": "unchanged", "drafts/c.pdf": "added", "sub/d.pdf": "removed"}


def test_a_failed_ingest_is_retried_by_the_next_run_and_keeps_the_previous_document(rig, root, run_jobs):
    write(root, "a.txt", "alpha", mtime=1000)
    write(root, "b.txt", "bravo", mtime=1000)
    source = folder_source(rig, root)
    rig.of("c").fail = {"b.txt"}
    run = sync(rig, run_jobs, source.id)
    assert outcomes(rig, run) == {"a.txt": "added", "b.txt": "failed"}
    entry = rig.sources.run_entries(run)[1]
    assert entry.error == "cannot parse" and entry.error_code == "extraction_failed"
    assert rig.sources.run(run).state == "done"  # the run went through; its history says what failed
    rig.of("c").fail = set()
    run = sync(rig, run_jobs, source.id)
    assert outcomes(rig, run) == {"a.txt": "unchanged", "b.txt": "added"}


def test_a_run_stopped_mid_way_resumes_without_ingesting_anything_twice(rig, root, run_jobs):
    for n in range(6):
        write(root, f"f{n}.txt", f"file {n}", mtime=1000)
    source = folder_source(rig, root)
    ingest = rig.of("c")
    stopping = threading.Event()
    original = ingest.ingest

    def ingest_then_stop(*args, **kwargs):  # the worker is told to stop after the third file
        result = original(*args, **kwargs)
        if len(ingest.ingested()) == 3:
            stopping.set()
        return result

    ingest.ingest = ingest_then_stop  # type: ignore[method-assign]
    run = rig.sources.start_run(source.id)
    run_jobs(stopping)
    job = rig.jobs.get(run.id)
    assert not job.state.finished and job.files[0].state == "queued"  # given back for the next worker
    assert len(outcomes(rig, run.id)) == 3
    with pytest.raises(ConflictError):  # still the source's run: no second one meanwhile
        rig.sources.start_run(source.id)
    ingest.ingest = original  # type: ignore[method-assign]
    run_jobs()  # the next worker resumes it
    assert rig.jobs.get(run.id).state == "done"
    assert sorted(ingest.ingested()) == [f"f{n}.txt" for n in range(6)]  # each exactly once
    assert set(outcomes(rig, run.id).values()) == {"added"} and len(outcomes(rig, run.id)) == 6


def test_a_worker_killed_mid_run_is_resumed_by_a_retry_without_duplicates(rig, root, run_jobs):
    for n in range(5):
        write(root, f"f{n}.txt", f"file {n}", mtime=1000)
    source = folder_source(rig, root)
    ingest = rig.of("c")
    ingest.die_after = 2
    run = rig.sources.start_run(source.id)
    worker = JobRunner(rig.jobs.store, None, rig.jobs.blobs, sync=rig.runner.run)  # type: ignore[arg-type]
    lease = worker.claim_next()
    assert lease is not None
    with pytest.raises(WorkerDied, match=r"f2\.txt"):  # the process is gone mid-run
        worker.run_claimed(lease)
    worker.fail(lease, "internal error while running the file")  # what the embedded worker's boundary records
    assert rig.jobs.get(run.id).state == "failed" and rig.sources.run(run.id).state == "failed"
    ingest.die_after = None
    rig.jobs.retry(run.id)
    run_jobs()
    assert rig.jobs.get(run.id).state == "done"
    assert sorted(ingest.ingested()) == [f"f{n}.txt" for n in range(5)]
    assert sorted(outcomes(rig, run.id).values()) == ["added"] * 5


def test_one_run_per_source_at_a_time_and_cancel_frees_it(rig, root, run_jobs):
    write(root, "a.txt", "alpha")
    source = folder_source(rig, root)
    run = rig.sources.start_run(source.id)
    with pytest.raises(ConflictError):
        rig.sources.start_run(source.id)
    rig.jobs.cancel(run.id)
    assert rig.sources.run(run.id).state == "cancelled"
    again = rig.sources.start_run(source.id)  # the cancelled run no longer holds the source
    run_jobs()
    assert outcomes(rig, again.id) == {"a.txt": "added"}


def test_a_listing_that_fails_removes_nothing(rig, root, run_jobs):
    write(root, "a.txt", "alpha")
    source = folder_source(rig, root)
    sync(rig, run_jobs, source.id)
    (root / "docs" / "a.txt").unlink()
    (root / "docs").rmdir()  # the folder is gone (an unmounted share): not "every file deleted"
    run = sync(rig, run_jobs, source.id)
    assert rig.sources.run(run).state == "failed" and "listed" in (rig.sources.run(run).error or "")
    assert rig.of("c").removed() == [] and outcomes(rig, run) == {}


def test_the_store_down_fails_the_entries_and_the_next_run_catches_up(rig, root, run_jobs):
    write(root, "a.txt", "alpha")
    source = folder_source(rig, root)
    rig.of("c").down = True
    run = sync(rig, run_jobs, source.id)
    assert outcomes(rig, run) == {"a.txt": "failed"}
    assert rig.sources.run_entries(run)[0].error_code == "upstream_unavailable"
    rig.of("c").down = False
    run = sync(rig, run_jobs, source.id)
    assert outcomes(rig, run) == {"a.txt": "added"}


def test_due_sources_are_queued_once_and_deleting_a_source_can_remove_its_documents(rig, root, run_jobs):
    write(root, "a.txt", "alpha")
    scheduled = folder_source(rig, root, interval_seconds=3600)
    manual = folder_source(rig, root)
    started = rig.sources.enqueue_due()
    assert len(started) == 1 and rig.sources.run(started[0]).source_id == scheduled.id
    assert rig.sources.enqueue_due() == []  # next run an hour later; and the run holds the source meanwhile
    source = rig.sources.get(scheduled.id)
    assert source.next_run_at is not None and source.next_run_at >= source.last_run_at + 3600  # type: ignore[operator]
    run_jobs()
    assert Outcome.ADDED in {e.outcome for e in rig.sources.run_entries(started[0])}
    removed = rig.sources.delete(scheduled.id, remove_documents=True, ingest=rig.of("c"))
    assert removed == 1 and rig.of("c").removed() == ["a.txt"]
    assert rig.sources.sources()[1] == 1 and rig.sources.get(manual.id)


def test_an_s3_prefix_is_synced_by_etag(rig, s3_server, run_jobs_for):
    rig = sync_rig(rig.settings.model_copy(update={"sync_s3_buckets": {s3_server.bucket}}))
    put = lambda key, body: s3_server.client.put_object(Bucket=s3_server.bucket, Key=f"team/{key}", Body=body)  # noqa: E731
    put("a.txt", b"alpha")
    put("b.txt", b"bravo")
    source = rig.sources.create(collection="c", kind=SourceKind.S3, location=f"s3://{s3_server.bucket}/team")
    first = rig.sources.start_run(source.id).id
    run_jobs_for(rig)()
    assert outcomes(rig, first) == {"a.txt": "added", "b.txt": "added"}
    put("a.txt", b"alpha two")
    s3_server.client.delete_object(Bucket=s3_server.bucket, Key="team/b.txt")
    put("c.txt", b"charlie")
    second = rig.sources.start_run(source.id).id
    run_jobs_for(rig)()
    assert outcomes(rig, second) == {"a.txt": "updated", "b.txt": "removed", "c.txt": "added"}
    assert rig.of("c").calls[2:] == [("ingest", "a.txt"), ("ingest", "c.txt"), ("remove", "b.txt")]


def test_a_url_list_is_synced_with_conditional_gets(rig, run_jobs):
    from app.testing.sync import PageServer

    with PageServer() as pages:
        pages.pages = {"/a.txt": b"alpha", "/b.html": b"<p>bravo</p>"}
        urls = [f"{pages.url}/a.txt", f"{pages.url}/b.html"]
        source = rig.sources.create(collection="c", kind=SourceKind.URLS, location=urls)
        first = sync(rig, run_jobs, source.id)
        assert outcomes(rig, first) == {urls[0]: "added", urls[1]: "added"}
        pages.pages["/a.txt"] = b"alpha two"
        del pages.pages["/b.html"]  # a page that answers 404 fails (it may come back); it is not removed
        second = sync(rig, run_jobs, source.id)
        assert outcomes(rig, second) == {urls[0]: "updated", urls[1]: "failed"}
        third = sync(rig, run_jobs, source.id)
        assert outcomes(rig, third)[urls[0]] == "unchanged"
        assert [status for _, path, status in pages.hits if path == "/a.txt"] == [200, 200, 304]
        rig.sources.update(source.id, location=[urls[0]])  # a URL taken off the list is removed
        fourth = sync(rig, run_jobs, source.id)
        assert outcomes(rig, fourth) == {urls[0]: "unchanged", urls[1]: "removed"}
        assert rig.of("c").removed() == [urls[1]]


def test_a_run_records_its_collections_generation_and_a_drop_cancels_it(rig, root, run_jobs):
    write(root, "a.txt", "alpha")
    source = folder_source(rig, root)
    generations = {"c": 3}
    rig.jobs.generation_of = lambda collection: generations[collection]
    run = rig.sources.start_run(source.id)
    assert rig.jobs.get(run.id).generation == 3
    generations["c"] = 4  # the collection was dropped before the run ran

    def generation_of(collection: str) -> int:
        return generations[collection]

    runner = JobRunner(rig.jobs.store, None, rig.jobs.blobs, sync=rig.runner.run, generation_of=generation_of)  # type: ignore[arg-type]
    runner.run(run.id)
    assert rig.jobs.get(run.id).state == "cancelled" and rig.of("c").calls == []
