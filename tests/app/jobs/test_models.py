"""The job and file states: one enum each, listed as such in the OpenAPI schema; progress counts finished files."""

from __future__ import annotations

from app.jobs import FileState, FileStatus, Job, JobFile, JobState
from app.jobs.models import TERMINAL_STATES
from app.main import create_app
from app.settings import Settings


def test_the_openapi_schema_lists_the_states_from_the_enums(tmp_path):
    schema = create_app(Settings(data_dir=tmp_path)).openapi()
    components = schema["components"]["schemas"]
    assert components["JobState"]["enum"] == [s.value for s in JobState]
    assert components["FileState"]["enum"] == [s.value for s in FileState]
    assert components["FileStatus"]["enum"] == [s.value for s in FileStatus]
    job = components["JobOut"]["properties"]
    assert job["state"] == {"$ref": "#/components/schemas/JobState"}
    (state_filter,) = [p for p in schema["paths"]["/jobs"]["get"]["parameters"] if p["name"] == "state"]
    assert {"$ref": "#/components/schemas/JobState"} in state_filter["schema"]["anyOf"]


def test_only_done_failed_and_cancelled_are_finished():
    assert [s for s in JobState if s.finished] == list(TERMINAL_STATES) == ["done", "failed", "cancelled"]


def _file(state: FileState, **counts: int) -> JobFile:
    values = {"pages_total": 2, "pages_done": 0, "chunks_total": 0, "chunks_done": 0, **counts}
    return JobFile(
        index=0,
        filename="f",
        content_type=None,
        size=1,
        document_id="d",
        spooled=True,
        state=state,
        status=None,
        attempts=0,
        pages=0,
        chunks=0,
        error=None,
        error_code=None,
        duration_ms=0.0,
        **values,
    )


def test_progress_counts_finished_files_pages_and_chunks():
    files = [
        _file(FileState.DONE, pages_done=2, chunks_total=5, chunks_done=5),
        _file(FileState.SKIPPED),
        _file(FileState.RUNNING, pages_done=2, chunks_total=4),
        _file(FileState.QUEUED),
    ]
    job = Job("j", "c", {}, JobState.EMBEDDING, None, False, None, 0.0, 0.0, 0.0, None, files)
    assert job.progress == {
        "files_done": 2,
        "files_total": 4,
        "pages_done": 4,
        "pages_total": 8,
        "chunks_done": 5,
        "chunks_total": 9,
    }
