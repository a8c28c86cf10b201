"""Low finding: the spooled uploads of failed jobs were never removed (`$RAG_DATA_DIR/jobs/<id>/` grew for ever, and
`jobs.db` with it). Now a retention sweep runs when a server starts (then hourly): the uploads of a job finished more
than RAG_JOB_RETENTION_DAYS ago are removed, and a retry of it answers 410 with the reason instead of failing later."""

from __future__ import annotations

import sqlite3
import time

from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from app.testing.api import admin_headers, wait_for_job

EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" * 64  # refused by every converter: the job fails


def test_spooled_uploads_of_failed_jobs_are_removed_after_the_retention(tmp_path, make_tiny_profile):
    settings = Settings(
        data_dir=tmp_path / "data",
        pipelines_dir=make_tiny_profile(tmp_path / "pipelines"),
        rate_limit="off",
        job_retention_days=7,
    )
    headers = admin_headers(settings.data_dir)
    with TestClient(create_app(settings), headers=headers) as client:
        old = client.post("/documents/upload?async=true", files=[("files", ("old.exe", EXE))], data={"collection": "s"})
        new = client.post("/documents/upload?async=true", files=[("files", ("new.exe", EXE))], data={"collection": "s"})
        old_job, new_job = (wait_for_job(client, r.json()["job_id"])[0] for r in (old, new))
    assert old_job["state"] == new_job["state"] == "failed"
    old_spool, new_spool = (settings.jobs_dir / job["job_id"] for job in (old_job, new_job))
    assert (old_spool / "0").read_bytes() == EXE  # kept for a retry
    eight_days_ago = time.time() - 8 * 86_400
    with sqlite3.connect(settings.jobs_db) as db:  # the first job finished eight days ago
        db.execute("UPDATE jobs SET finished_at = ? WHERE id = ?", (eight_days_ago, old_job["job_id"]))

    with TestClient(create_app(settings), headers=headers) as client:  # a server starts: the sweep runs
        deadline = time.monotonic() + 30
        while old_spool.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not old_spool.exists(), "the uploads of a job failed eight days ago are still spooled"
        assert (new_spool / "0").exists()  # within the retention: kept
        retried = client.post(f"/jobs/{old_job['job_id']}/retry")
        assert retried.status_code == 410, retried.text
        assert retried.json()["error"]["code"] == "uploads_removed"
        assert "removed 8 days after it finished" in retried.json()["error"]["message"]
        assert client.post(f"/jobs/{new_job['job_id']}/retry").status_code == 200
