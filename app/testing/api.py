"""Helpers for tests talking to the REST API: an API key's headers, waiting for a job to finish, an app over a tiny
profile with documents uploaded, and a Server-Sent Events body read into its events.

`admin_headers(data_dir, role=..., collections=..., principals=...)` creates a key in the data dir's key store and
returns its headers; `principals` (`user:<name>`, `group:<name>`, `*`) are whose documents it reads: `["*"]` (every
document, as RAG_ADMIN_KEY) unless told otherwise, `[]` for a key that reads public documents only."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from app.jobs.models import TERMINAL_STATES

JOB_TERMINAL = frozenset(TERMINAL_STATES)


def admin_headers(
    data_dir: Path,
    *,
    role: str = "admin",
    collections: frozenset[str] | None = None,
    principals: Sequence[str] = ("*",),
) -> dict[str, str]:
    """Headers carrying a new API key (admin on every collection, reading every document, unless told otherwise) of
    the data dir's key store; e.g. `admin_headers(d, role="reader", principals=["group:eng"])`."""
    from app.composition import key_store
    from app.services.api_keys import Role
    from app.settings import Settings

    created = key_store(Settings(data_dir=data_dir)).create(
        name="tests", role=Role(role), collections=collections, principals=list(principals)
    )
    assert created is not None
    return {"Authorization": f"Bearer {created[1]}"}


def wait_for_job(
    client: Any, job_id: str, *, until: frozenset[str] | set[str] = JOB_TERMINAL, seconds: float = 180
) -> tuple[dict[str, Any], list[str]]:
    """Poll `GET /jobs/{id}` (TestClient or httpx client) until the state is in `until`; the job and states seen.

    :raises AssertionError: a non-200 answer, or the job still not in `until` after `seconds`.
    """
    seen: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        response = client.get(f"/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        if not seen or seen[-1] != job["state"]:
            seen.append(job["state"])
        if job["state"] in until:
            return job, seen
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} still {seen[-1] if seen else 'unknown'} after {seconds} s")


@contextlib.contextmanager
def app_with_documents(
    root: Path, *, edit: Callable[[dict[str, Any]], None], documents: Mapping[str, str], collection: str
) -> Iterator[Any]:
    """A `TestClient` (an admin key's headers set) of the app over the tiny default profile in `root/pipelines`, its
    query.yml changed by `edit` (e.g. a `SlowChatGenerator` as `llm`), with `documents` (file name -> text) uploaded
    to `collection` as text files, one request each."""
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings
    from app.testing.profiles import edit_yaml, tiny_profile

    pipelines = tiny_profile(root / "pipelines")
    edit_yaml(pipelines / "query.yml", edit)
    settings = Settings(data_dir=root / "data", pipelines_dir=pipelines, rate_limit="off")
    with TestClient(create_app(settings), headers=admin_headers(settings.data_dir)) as client:
        for name, text in documents.items():
            files = {"files": (name, text.encode(), "text/plain")}
            uploaded = client.post("/documents/upload", files=files, data={"collection": collection})
            assert uploaded.status_code == 200, uploaded.text
        yield client


def sse_events(body: str) -> list[tuple[str, Any]]:
    """The `(event, data)` pairs of a Server-Sent Events body whose events carry JSON data, in order."""
    blocks = [block.split("\n", 1) for block in body.split("\n\n") if block.strip()]
    return [(head.removeprefix("event: "), json.loads(data.removeprefix("data: "))) for head, data in blocks]
