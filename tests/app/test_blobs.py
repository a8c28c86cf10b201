"""The spool of background jobs (`app.blobs`): the same behaviour from a folder (`LocalBlobStore`) and from
S3-compatible storage (`S3BlobStore`, RAG_BLOB_URL), the latter against a real S3-protocol server on loopback (moto's
server mode) through the real boto3 client; a job's life with its uploads in S3 (spooled, deleted once indexed, a
failed file's kept until the retention sweep); the jobs API on S3, and its 503 when the storage is gone."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.blobs import BlobStore, LocalBlobStore, S3BlobStore, parse_blob_url
from app.composition import blob_store, job_service
from app.errors import UploadsRemovedError, UpstreamUnavailableError
from app.extras import MissingExtraError
from app.jobs import FileState, JobRunner, JobService, JobState, UploadedFile
from app.main import create_app
from app.services.ingest import IngestResult
from app.settings import Settings
from app.testing import servers
from app.testing.api import admin_headers, wait_for_job
from app.testing.servers import S3Bucket, ServerProcess, log_tail

DAY = 86_400


@pytest.fixture(params=["local", "s3"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    """Each behaviour test twice: on a folder and on a fresh bucket of the S3 test server."""
    if request.param == "local":
        return LocalBlobStore(tmp_path / "jobs")
    bucket: S3Bucket = request.getfixturevalue("s3_server")
    return S3BlobStore(bucket.blob_url)


# -- the BlobStore contract, on both stores ----------------------------------------------------------------------------


def test_a_blob_reads_back_byte_for_byte(blobs: BlobStore):
    data = bytes(range(256)) * 300
    blobs.put("job1/0", data)
    blobs.put("job1/1", b"")
    assert blobs.get("job1/0") == data
    assert blobs.get("job1/1") == b""
    blobs.put("job1/0", b"replaced")
    assert blobs.get("job1/0") == b"replaced"


def test_a_missing_blob_is_file_not_found_and_deleting_it_is_no_error(blobs: BlobStore):
    with pytest.raises(FileNotFoundError) as missing:
        blobs.get("job1/0")
    assert missing.value.strerror  # the runner's `spool_missing` message quotes it
    blobs.put("job1/0", b"x")
    blobs.delete("job1/0")
    blobs.delete("job1/0")
    blobs.delete("never/7")
    with pytest.raises(FileNotFoundError):
        blobs.get("job1/0")


def test_folders_are_the_job_ids_with_the_time_of_their_newest_blob(blobs: BlobStore):
    assert blobs.folders() == {}
    before = time.time()
    blobs.put("job1/0", b"a")
    blobs.put("job1/1", b"b")
    blobs.put("job2/0", b"c")
    blobs.sync_folder("job1")
    after = time.time()
    folders = blobs.folders()
    assert set(folders) == {"job1", "job2"}
    for written in folders.values():  # S3 keeps whole seconds
        assert before - 2 <= written <= after + 2


def test_delete_folder_frees_the_bytes_of_that_job_only(blobs: BlobStore):
    blobs.put("job1/0", b"a" * 100)
    blobs.put("job1/1", b"b" * 20)
    blobs.put("job10/0", b"c" * 7)  # a job id that starts like the other
    assert blobs.delete_folder("job1") == 120
    assert set(blobs.folders()) == {"job10"}
    assert blobs.get("job10/0") == b"c" * 7
    assert blobs.delete_folder("job1") == 0
    blobs.remove_empty_folder("job1")
    blobs.remove_empty_folder("job10")  # not empty: kept
    assert blobs.get("job10/0") == b"c" * 7


@pytest.mark.parametrize("key", ["job1", "job1/", "/0", "../0", "job1/../0", "job1/0/1", "./0", "job1/.."])
def test_keys_that_are_not_job_and_index_are_refused(blobs: BlobStore, key: str):
    with pytest.raises(ValueError, match="not a spool"):
        blobs.put(key, b"x")
    with pytest.raises(ValueError, match="not a spool"):
        blobs.get(key)


@pytest.mark.parametrize("folder", ["", ".", "..", "a/b"])
def test_delete_folder_never_takes_the_whole_spool(blobs: BlobStore, folder: str):
    blobs.put("job1/0", b"kept")
    with pytest.raises(ValueError, match="not a spool folder"):
        blobs.delete_folder(folder)
    assert blobs.get("job1/0") == b"kept"


# -- S3 specifics ------------------------------------------------------------------------------------------------------


def test_s3_keys_are_prefix_job_and_index_and_other_objects_are_left_alone(s3_server: S3Bucket):
    s3_server.client.put_object(Bucket=s3_server.bucket, Key="elsewhere/job1/0", Body=b"not ours")
    s3_server.client.put_object(Bucket=s3_server.bucket, Key="spool/loose-object", Body=b"not a spool key")
    blobs = S3BlobStore(s3_server.blob_url)
    assert blobs.where == s3_server.blob_url
    blobs.put("job1/0", b"abc")
    assert s3_server.keys() == ["elsewhere/job1/0", "spool/job1/0", "spool/loose-object"]
    assert set(blobs.folders()) == {"job1"}
    assert blobs.delete_folder("job1") == 3
    assert s3_server.keys() == ["elsewhere/job1/0", "spool/loose-object"]

    at_root = S3BlobStore(f"s3://{s3_server.bucket}")
    at_root.put("job2/0", b"x")
    assert "job2/0" in s3_server.keys()
    # At the bucket's root every `<a>/<b>` key reads as a spool key (the docs say: give the spool a prefix of its own)
    assert set(at_root.folders()) == {"job2", "spool"}


def test_s3_listing_and_deleting_go_page_by_page(s3_server: S3Bucket):
    blobs = S3BlobStore(s3_server.blob_url)
    blobs.list_page_size = blobs.delete_batch = 2
    for index in range(5):
        blobs.put(f"job1/{index}", b"12345")
    blobs.put("job2/0", b"z")
    assert set(blobs.folders()) == {"job1", "job2"}
    assert blobs.delete_folder("job1") == 25
    assert s3_server.keys() == ["spool/job2/0"]


@pytest.mark.parametrize(
    "url", ["s3:/bucket", "http://bucket/prefix", "s3://", "s3://key:secret@bucket/p", "s3://b/a//c", "s3://b/../c"]
)
def test_a_blob_url_that_is_not_s3_bucket_prefix_is_refused(url: str):
    with pytest.raises(ValueError, match="RAG_BLOB_URL must read s3://bucket/prefix") as refused:
        parse_blob_url(url)
    assert "secret" not in str(refused.value)


def test_blob_urls_give_bucket_and_prefix():
    assert parse_blob_url("s3://uploads") == ("uploads", "")
    assert parse_blob_url("s3://uploads/") == ("uploads", "")
    assert parse_blob_url("s3://uploads/rag/spool/") == ("uploads", "rag/spool")


def test_a_missing_bucket_stops_the_start_with_the_reason(s3_server: S3Bucket, tmp_path: Path):
    settings = Settings(data_dir=tmp_path, blob_url="s3://no-such-bucket-here/spool")
    with pytest.raises(UpstreamUnavailableError, match="the bucket 'no-such-bucket-here' does not exist"):
        blob_store(settings)
    with pytest.raises(UpstreamUnavailableError, match="does not exist"):
        job_service(settings)
    with pytest.raises(UpstreamUnavailableError, match="does not exist"):  # and if it is removed later
        S3BlobStore(settings.blob_url or "").put("job1/0", b"x")


def test_the_cli_names_a_missing_bucket_instead_of_a_traceback(
    s3_server: S3Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from typer.testing import CliRunner

    from app.cli import cli

    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RAG_BLOB_URL", "s3://no-such-bucket-here/spool")
    result = CliRunner().invoke(cli, ["jobs", "sweep"], catch_exceptions=False)
    assert result.exit_code == 2
    assert "the bucket 'no-such-bucket-here' does not exist" in result.output


def test_refused_credentials_stop_the_start_with_the_reason(tmp_path: Path):
    with servers.s3_server(tmp_path, env={"INITIAL_NO_AUTH_ACTION_COUNT": "0"}) as server:  # moto checks keys
        blobs = S3BlobStore("s3://some-bucket/spool", client=servers.s3_client(server.url))
        with pytest.raises(UpstreamUnavailableError, match=r"access denied \(403\): check the AWS credentials"):
            blobs.check()
        with pytest.raises(UpstreamUnavailableError, match=r"access denied \(InvalidAccessKeyId\)"):
            blobs.put("job1/0", b"x")


def test_without_a_blob_url_the_spool_is_the_data_dir_folder(tmp_path: Path):
    settings = Settings(data_dir=tmp_path)
    assert blob_store(settings) == settings.jobs_dir
    assert job_service(settings).jobs_dir == settings.jobs_dir


def test_storage_outages_are_upstream_unavailable_never_a_missing_upload(own_s3_server: S3Bucket, tmp_path: Path):
    blobs = S3BlobStore(own_s3_server.blob_url)
    blobs.put("job1/0", b"x")
    assert own_s3_server.server is not None
    own_s3_server.server.stop()

    blob_store(Settings(data_dir=tmp_path, blob_url=own_s3_server.blob_url))  # unreachable at start: warns, starts
    for action in (
        lambda: blobs.put("job1/1", b"y"),
        lambda: blobs.get("job1/0"),  # not FileNotFoundError: the runner would fail it as `spool_missing`
        lambda: blobs.delete("job1/0"),
        blobs.folders,
        lambda: blobs.delete_folder("job1"),
    ):
        with pytest.raises(UpstreamUnavailableError, match="the storage endpoint cannot be reached") as error:
            action()
        assert error.value.code == "upstream_unavailable"
        assert own_s3_server.endpoint not in error.value.message  # the API's answer names the bucket, not the host


def test_a_retention_sweep_during_a_storage_outage_is_logged_and_retried(own_s3_server: S3Bucket, tmp_path: Path):
    from app.jobs.workers import sweep_once

    service = job_service(Settings(data_dir=tmp_path, blob_url=own_s3_server.blob_url))
    assert own_s3_server.server is not None
    own_s3_server.server.stop()
    sweep_once(service)


def test_without_boto3_the_error_names_the_cluster_extra(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(MissingExtraError, match=r"RAG_BLOB_URL needs .*ragstack\[cluster\]"):
        S3BlobStore("s3://bucket/spool")


# -- a job's uploads in S3 ---------------------------------------------------------------------------------------------


class FailingIngest:
    """Indexes every file except those named `bad*` while `failing`: they fail as a sync upload of a broken file."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bytes]] = []
        self.failing = True

    def discard(self, collection: str, document_id: str) -> int:
        return 0

    def ingest_bytes(self, data: bytes, filename: str, **kwargs: Any) -> IngestResult:
        self.seen.append((filename, data))
        failed = self.failing and filename.startswith("bad")
        return IngestResult(
            document_id="d",
            filename=filename,
            content_type="text/plain",
            status="failed" if failed else "indexed",
            pages=1,
            chunks=0 if failed else 2,
            error="no text could be extracted" if failed else None,
            error_code="extraction_failed" if failed else None,
        )


@pytest.fixture
def s3_jobs(s3_server: S3Bucket, tmp_path: Path) -> JobService:
    """The job service `rag serve` builds with RAG_BLOB_URL on the test bucket, uploads kept 7 days."""
    settings = Settings(data_dir=tmp_path / "data", blob_url=s3_server.blob_url, job_retention_days=7)
    service = job_service(settings)
    assert isinstance(service.blobs, S3BlobStore)
    return service


def _upload(name: str, data: bytes) -> UploadedFile:
    return UploadedFile(filename=name, content_type="text/plain", data=data)


def test_a_job_on_s3_spools_indexes_deletes_and_keeps_the_failed_file_until_the_retention(
    s3_jobs: JobService, s3_server: S3Bucket
):
    job = s3_jobs.submit("c", {}, [_upload("good.txt", b"good text"), _upload("bad.txt", b"bad bytes")])
    assert s3_server.keys() == [f"spool/{job.id}/0", f"spool/{job.id}/1"]

    ingest = FailingIngest()
    runner = JobRunner(s3_jobs.store, ingest, s3_jobs.blobs)  # type: ignore[arg-type]
    assert runner.run(job.id)
    assert ingest.seen == [("good.txt", b"good text"), ("bad.txt", b"bad bytes")]
    finished = s3_jobs.get(job.id)
    assert finished.state == JobState.DONE
    assert [f.state for f in finished.files] == [FileState.DONE, FileState.FAILED]
    assert s3_server.keys() == [f"spool/{job.id}/1"]  # the indexed file's upload is gone, the failed one's kept

    assert s3_jobs.sweep().folders_removed == 0  # within the retention
    assert s3_server.keys() == [f"spool/{job.id}/1"]
    later = s3_jobs.store.clock() + 7 * DAY + 60
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(s3_jobs.store, "clock", lambda: later)
        report = s3_jobs.sweep()
    assert (report.uploads_removed, report.folders_removed, report.bytes_freed) == (1, 1, len(b"bad bytes"))
    assert s3_server.keys() == []
    with pytest.raises(UploadsRemovedError):
        s3_jobs.retry(job.id)


def test_a_retried_job_on_s3_reads_its_kept_upload_again(s3_jobs: JobService, s3_server: S3Bucket):
    job = s3_jobs.submit("c", {}, [_upload("bad.txt", b"first")])
    ingest = FailingIngest()
    runner = JobRunner(s3_jobs.store, ingest, s3_jobs.blobs)  # type: ignore[arg-type]
    runner.run(job.id)
    assert s3_jobs.get(job.id).state == JobState.FAILED
    s3_jobs.retry(job.id)
    ingest.failing = False
    assert runner.run(job.id)
    assert s3_jobs.get(job.id).state == JobState.DONE
    assert ingest.seen == [("bad.txt", b"first"), ("bad.txt", b"first")]
    assert s3_server.keys() == []


def test_an_upload_removed_from_the_bucket_fails_its_file_as_spool_missing(s3_jobs: JobService, s3_server: S3Bucket):
    job = s3_jobs.submit("c", {}, [_upload("a.txt", b"text")])
    s3_server.client.delete_object(Bucket=s3_server.bucket, Key=f"spool/{job.id}/0")
    JobRunner(s3_jobs.store, FailingIngest(), s3_jobs.blobs).run(job.id)  # type: ignore[arg-type]
    finished = s3_jobs.get(job.id)
    assert finished.state == JobState.FAILED
    assert finished.files[0].error_code == "spool_missing"
    assert "no such object in s3://" in (finished.files[0].error or "")


def test_a_job_run_during_a_storage_outage_fails_its_file_as_retryable(own_s3_server: S3Bucket, tmp_path: Path):
    service = job_service(Settings(data_dir=tmp_path, blob_url=own_s3_server.blob_url))
    job = service.submit("c", {}, [_upload("a.txt", b"text")])
    assert own_s3_server.server is not None
    own_s3_server.server.stop()
    JobRunner(service.store, FailingIngest(), service.blobs).run(job.id)  # type: ignore[arg-type]
    file = service.get(job.id).files[0]
    assert (file.state, file.error_code) == (FileState.FAILED, "upstream_unavailable")  # retryable, not spool_missing
    assert service.get(job.id).state == JobState.FAILED


def test_the_sweep_removes_s3_leftovers_of_unrecorded_submissions_after_the_retention(
    s3_jobs: JobService, s3_server: S3Bucket
):
    stray = uuid.uuid4().hex  # a submission interrupted before its job was recorded
    s3_jobs.blobs.put(f"{stray}/0", b"x" * 10)
    assert s3_jobs.sweep().folders_removed == 0
    later = s3_jobs.store.clock() + 7 * DAY + 60
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(s3_jobs.store, "clock", lambda: later)
        report = s3_jobs.sweep()
    assert (report.folders_removed, report.bytes_freed) == (1, 10)
    assert s3_server.keys() == []


def _wait_for_the_start_sweep(server: ServerProcess) -> None:
    """Wait until the retention sweep of the app's start has listed the bucket (the S3 server logs each request)."""
    deadline = time.monotonic() + 30
    while "list-type=2" not in log_tail(server.log, chars=1_000_000):
        assert time.monotonic() < deadline, "the start's retention sweep never listed the bucket"
        time.sleep(0.1)


# -- the jobs API with RAG_BLOB_URL ------------------------------------------------------------------------------------


@pytest.fixture
def s3_api(tmp_path: Path, make_tiny_profile: Any) -> Iterator[Any]:
    """`s3_api(bucket)`: a TestClient of an app whose spool is `bucket` (RAG_BLOB_URL), admin key, started."""
    pipelines = make_tiny_profile(tmp_path / "pipelines")
    clients: list[TestClient] = []

    def start(bucket: S3Bucket) -> TestClient:
        settings = Settings(
            data_dir=tmp_path / "data", pipelines_dir=pipelines, blob_url=bucket.blob_url, rate_limit="off"
        )
        client = TestClient(create_app(settings), headers=admin_headers(settings.data_dir))
        client.__enter__()
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.__exit__(None, None, None)


@pytest.mark.integration
def test_an_async_upload_with_a_blob_url_is_spooled_in_s3_and_indexed(s3_api: Any, s3_server: S3Bucket, text_file):
    client = s3_api(s3_server)
    assert isinstance(client.app.state.rag.jobs.blobs, S3BlobStore)
    files = [("files", (text_file.name, text_file.read_bytes()))]
    response = client.post("/documents/upload?async=true", files=files, data={"collection": "s3-jobs"})
    assert response.status_code == 202, response.text
    job, _ = wait_for_job(client, response.json()["job_id"])
    assert job["state"] == "done" and job["files"][0]["status"] == "indexed", job
    listed = client.get("/documents", params={"collection": "s3-jobs"}).json()["documents"]
    assert [d["filename"] for d in listed] == [text_file.name]
    assert s3_server.keys() == []  # indexed: its upload deleted
    assert not (client.app.state.rag.settings.jobs_dir).exists()  # nothing spooled on this host


@pytest.mark.integration
def test_an_async_upload_answers_503_with_the_reason_when_the_storage_is_down(
    s3_api: Any, own_s3_server: S3Bucket, text_file
):
    client = s3_api(own_s3_server)
    assert own_s3_server.server is not None
    _wait_for_the_start_sweep(own_s3_server.server)
    own_s3_server.server.stop()
    files = [("files", (text_file.name, text_file.read_bytes()))]
    response = client.post("/documents/upload?async=true", files=files, data={"collection": "s3-down"})
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "upstream_unavailable"
    assert error["message"] == (
        f"object storage {own_s3_server.blob_url} is unavailable: storing an upload failed: the storage endpoint "
        "cannot be reached (EndpointConnectionError)"
    )
    assert client.get("/jobs").json()["total"] == 0  # nothing recorded: the client uploads again later


@pytest.mark.integration
def test_the_app_refuses_to_start_on_a_missing_bucket_with_the_reason(
    s3_server: S3Bucket, tmp_path: Path, make_tiny_profile: Any
):
    settings = Settings(
        data_dir=tmp_path / "data",
        pipelines_dir=make_tiny_profile(tmp_path / "pipelines"),
        blob_url="s3://no-such-bucket-here/spool",
    )
    with (
        pytest.raises(UpstreamUnavailableError, match="the bucket 'no-such-bucket-here' does not exist"),
        TestClient(create_app(settings)),
    ):
        pass
