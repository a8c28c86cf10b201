"""Finding 6: PDF page counting ran pypdf in the API process, before the isolated parser and outside its time limit
(a crafted 9 MB PDF cost 19 s of CPU and +430 MB, and query latency rose 6x). Every PDF inspection, the page count
included, now happens once, in a worker process of the converters' pool, under the parse time limit."""

import dataclasses
from collections.abc import Iterator

import pypdf
import pypdfium2
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from app.testing.api import admin_headers, wait_for_job
from app.testing.crafted_pdfs import page_tree_pdf

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pdf_client(tmp_path_factory, make_tiny_profile) -> Iterator[TestClient]:
    """The app with auth on, PDFs limited to 3 pages, uploads up to 32 MiB."""
    root = tmp_path_factory.mktemp("pdf-inspection")
    settings = Settings(
        data_dir=root / "data",
        pipelines_dir=make_tiny_profile(root / "pipelines"),
        max_upload_mb=32,
        max_pdf_pages=3,
        rate_limit="off",
    )
    with TestClient(create_app(settings), headers=admin_headers(settings.data_dir)) as client:
        yield client


@pytest.fixture
def pdf_reads_in_the_server(monkeypatch) -> list[str]:
    """Every PDF opened in this process, the server's (with pypdf or PDFium); the parser workers are other processes.
    Opening one fails the request."""
    opened: list[str] = []

    def refuse(library: str):
        def open_pdf(*args, **kwargs):
            opened.append(library)
            raise AssertionError(f"{library} opened an uploaded PDF in the server process")

        return open_pdf

    monkeypatch.setattr(pypdf, "PdfReader", refuse("pypdf"))
    monkeypatch.setattr(pypdfium2, "PdfDocument", refuse("pdfium"))
    return opened


def _upload(client: TestClient, name: str, data: bytes, collection: str, **params: str):
    return client.post(
        "/documents/upload",
        params=params,
        files=[("files", (name, data, "application/pdf"))],
        data={"collection": collection},
    )


def test_pdf_page_count_runs_in_the_isolated_worker_under_the_timeout(
    pdf_client, pdf_reads_in_the_server, multipage_pdf, monkeypatch
):
    # the page limit is still enforced (413, same reason), on the direct and the job path, without a PDF opened here
    over = _upload(pdf_client, "six.pdf", multipage_pdf.read_bytes(), "pdfs")
    assert over.status_code == 413, over.text
    (refused,) = over.json()["error"]["detail"]["files"]
    assert refused["error"] == "six.pdf: the PDF has 6 pages, more than the limit of 3"
    accepted = _upload(pdf_client, "six.pdf", multipage_pdf.read_bytes(), "pdfs", **{"async": "true"})
    assert accepted.status_code == 202, accepted.text
    job, _ = wait_for_job(pdf_client, accepted.json()["job_id"])
    assert [(f["error_code"], f["error"]) for f in job["files"]] == [
        ("payload_too_large", "six.pdf: the PDF has 6 pages, more than the limit of 3")
    ]
    # a PDF whose page count takes longer than the parse time limit fails with parse_timeout: its worker is stopped
    ingest = pdf_client.app.state.rag.ingest
    monkeypatch.setattr(ingest, "limits", dataclasses.replace(ingest.limits, parse_timeout_s=0.05))
    slow = page_tree_pdf(200_000, xref=False, count=False)  # 12 MB: rebuild the xref, walk 200,000 pages
    timed_out = _upload(pdf_client, "crafted.pdf", slow, "pdfs")
    assert timed_out.status_code == 422, timed_out.text
    (failed,) = timed_out.json()["error"]["detail"]["files"]
    assert failed["error_code"] == "parse_timeout", failed
    assert "took longer than 0.05 s" in failed["error"]
    assert pdf_reads_in_the_server == []
