"""Finding: control characters (NUL, U+202E, ANSI escapes) were kept in stored file names and shown in listings,
logs and the prompt. They are removed before a name is stored, on the direct and the background-job path."""

import pytest

from app.services.naming import clean_filename
from app.testing.api import wait_for_job

pytestmark = pytest.mark.integration

HOSTILE = "evil\x1b[31m\u202efdp.txt"  # (a NUL is percent-encoded by the client: see the unit test below)
CLEAN = "evil[31mfdp.txt"


def _listed_names(client, collection: str) -> list[str]:
    response = client.get("/documents", params={"collection": collection})
    assert response.status_code == 200, response.text
    return [d["filename"] for d in response.json()["documents"]]


def test_redteam_ansi_and_bidi_override_file_name_is_listed_clean(client):
    files = [("files", (HOSTILE, b"harbour opening hours are nine to five", "text/plain"))]
    response = client.post("/documents/upload", files=files, data={"collection": "names"})
    assert response.status_code == 200, response.text
    assert response.json()["files"][0]["filename"] == CLEAN
    assert _listed_names(client, "names") == [CLEAN]
    body = {"question": "harbour hours", "collection": "names", "generate": False}
    assert {s["filename"] for s in client.post("/query", json=body).json()["sources"]} == {CLEAN}


def test_redteam_control_characters_in_a_job_file_name_are_removed(client):
    files = [("files", (HOSTILE, b"the lighthouse is painted red and white", "text/plain"))]
    response = client.post("/documents/upload", params={"async": "true"}, files=files, data={"collection": "jobnames"})
    assert response.status_code == 202, response.text
    job, _ = wait_for_job(client, response.json()["job_id"])
    assert job["state"] == "done", job
    assert [f["filename"] for f in job["files"]] == [CLEAN]
    assert _listed_names(client, "jobnames") == [CLEAN]


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("report\x00.pdf", "report.pdf"),
        ("a\nb\r\u2028c.txt", "abc.txt"),
        ("\u202egnp.exe", "gnp.exe"),
        ("\u2066x\u2069\u200e\ufeff.md", "x.md"),
        ("\x1b]0;title\x07notes.txt", "]0;titlenotes.txt"),
        ("../../etc/\x1bpasswd", "passwd"),
        ("\u202e\x00", "upload"),
        ("famille \U0001f468\u200d\U0001f469.txt", "famille \U0001f468\u200d\U0001f469.txt"),
    ],
)
def test_redteam_nul_bidi_and_escapes_are_removed_from_stored_names(raw, stored):
    assert clean_filename(raw) == stored
