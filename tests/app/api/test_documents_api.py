import json

import pytest

pytestmark = pytest.mark.integration


def _upload(client, files, collection="docs", metadata=None):
    data = {"collection": collection}
    if metadata is not None:
        data["metadata"] = metadata
    return client.post("/documents/upload", files=[("files", f) for f in files], data=data)


def _file(path, content_type="application/octet-stream"):
    return (path.name, path.read_bytes(), content_type)


def test_upload_each_format(client, docx_file, html_file, csv_file, markdown_file, text_file, png_file, linn_pdf):
    files = [_file(p) for p in (docx_file, html_file, csv_file, markdown_file, text_file, png_file, linn_pdf)]
    response = _upload(client, files, collection="formats", metadata=json.dumps({"team": "qa"}))
    assert response.status_code == 200, response.text
    body = response.json()
    statuses = {f["filename"]: f["status"] for f in body["files"]}
    assert set(statuses.values()) == {"indexed"}, body
    by_name = {f["filename"]: f for f in body["files"]}
    assert by_name[linn_pdf.name]["pages"] >= 1 and by_name[linn_pdf.name]["chunks"] >= 1
    assert by_name[csv_file.name]["content_type"] == "text/csv"
    listing = client.get("/documents", params={"collection": "formats"}).json()
    assert listing["total"] == len(files)
    assert all(d["tags"] == {"team": "qa"} for d in listing["documents"])


def test_mixed_batch_duplicate_and_all_failed(client, csv_file, html_file):
    corrupt = ("broken.pdf", b"%PDF-1.7 this is not a pdf", "application/pdf")
    first = _upload(client, [_file(csv_file), corrupt])
    assert first.status_code == 200
    statuses = [f["status"] for f in first.json()["files"]]
    assert statuses == ["indexed", "failed"]
    assert first.json()["files"][1]["error"]
    again = _upload(client, [_file(csv_file), _file(html_file)])
    assert [f["status"] for f in again.json()["files"]] == ["unchanged", "indexed"]  # the same source, same bytes
    only_bad = _upload(client, [corrupt, ("notes.xyz", bytes(range(256)), "application/octet-stream")])
    assert only_bad.status_code == 422  # two different reasons: the generic 422
    error = only_bad.json()["error"]
    assert error["code"] == "extraction_failed"
    assert [f["status"] for f in error["detail"]["files"]] == ["failed", "failed"]
    assert [f["error_code"] for f in error["detail"]["files"]] == ["extraction_failed", "unsupported_file_type"]
    assert "not a supported format" in error["detail"]["files"][1]["error"]


def test_upload_validation_errors(client, csv_file):
    assert _upload(client, [_file(csv_file)], collection="bad name!").status_code == 400
    bad_json = _upload(client, [_file(csv_file)], metadata="{not json")
    assert bad_json.status_code == 400
    assert bad_json.json()["error"]["code"] == "invalid_input"
    reserved = _upload(client, [_file(csv_file)], metadata=json.dumps({"collection": "x"}))
    assert reserved.status_code == 400
    assert client.post("/documents/upload", data={"collection": "docs"}).status_code == 422
    big = _upload(client, [("big.txt", b"x" * (1024 * 1024 + 1), "text/plain")])
    assert big.status_code == 413
    assert big.json()["error"]["code"] == "payload_too_large"
    assert "larger than 1 MiB" in big.json()["error"]["detail"]["files"][0]["error"]


def test_list_is_paged_and_delete_removes_chunks(client, docx_file, text_file, markdown_file):
    _upload(client, [_file(docx_file), _file(text_file), _file(markdown_file)], collection="paged")
    page1 = client.get("/documents", params={"collection": "paged", "limit": 2}).json()
    page2 = client.get("/documents", params={"collection": "paged", "limit": 2, "offset": 2}).json()
    assert page1["total"] == 3 and len(page1["documents"]) == 2 and len(page2["documents"]) == 1
    victim = page1["documents"][0]
    deleted = client.delete(f"/documents/{victim['document_id']}")
    assert deleted.status_code == 200
    assert deleted.json()["deleted_chunks"] == victim["chunks"]
    assert client.get("/documents", params={"collection": "paged"}).json()["total"] == 2
    search = client.post("/query", json={"question": victim["filename"], "collection": "paged", "generate": False})
    assert all(s["document_id"] != victim["document_id"] for s in search.json()["sources"])
    missing = client.delete(f"/documents/{victim['document_id']}")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


def test_an_uploaded_pdf_is_counted_once_in_a_worker(client, linn_pdf, text_file, monkeypatch):
    """The route's page count (for the job threshold) travels with the file: the page limit does not count again."""
    from app.services import file_checks
    from app.testing.api import wait_for_job

    counted: list[str] = []
    count_in_worker = file_checks.count_pdf_pages

    def counting(data, *, timeout_s, name="the PDF"):
        counted.append(name)
        return count_in_worker(data, timeout_s=timeout_s, name=name)

    monkeypatch.setattr(file_checks, "count_pdf_pages", counting)
    files = [_file(linn_pdf), _file(text_file)]
    direct = _upload(client, files, collection="counted-once")
    assert [f["status"] for f in direct.json()["files"]] == ["indexed", "indexed"], direct.text
    assert counted == [linn_pdf.name]
    counted.clear()
    files = [("files", _file(linn_pdf)), ("files", _file(text_file))]
    accepted = client.post("/documents/upload?async=true", files=files, data={"collection": "counted-once-job"})
    assert accepted.status_code == 202, accepted.text
    job, _ = wait_for_job(client, accepted.json()["job_id"])
    assert [f["status"] for f in job["files"]] == ["indexed", "indexed"], job
    assert counted == [linn_pdf.name]


def test_put_replaces_a_document_with_a_new_version_under_its_id(client):
    first = _upload(client, [("notes.txt", b"Tug crews log the tide at dawn. " * 20, "text/plain")], collection="put")
    created = first.json()["files"][0]
    assert (created["status"], created["version"], created["source_id"]) == ("indexed", 1, "notes.txt")
    document_id = created["document_id"]
    new = b"Tug crews log the tide at dawn. " * 20 + b"Pilots board at the outer buoy."
    put = client.put(f"/documents/{document_id}", files={"file": ("notes-v2.txt", new, "text/plain")})
    assert put.status_code == 200, put.text
    replaced = put.json()["files"][0]
    assert (replaced["status"], replaced["version"], replaced["document_id"]) == ("updated", 2, document_id)
    assert replaced["source_id"] == "notes.txt" and replaced["chunks_added"] >= 1
    listing = client.get("/documents", params={"collection": "put"}).json()
    assert listing["total"] == 1
    (listed,) = listing["documents"]
    assert (listed["document_id"], listed["filename"], listed["version"]) == (document_id, "notes-v2.txt", 2)
    assert listed["source_id"] == "notes.txt" and listed["updated_at"] > 0
    same = client.put(f"/documents/{document_id}", files={"file": ("notes-v2.txt", new, "text/plain")}).json()
    assert (same["files"][0]["status"], same["files"][0]["version"]) == ("updated", 3)  # PUT always makes a version
    assert same["files"][0]["chunks_unchanged"] == same["files"][0]["chunks"] and same["files"][0]["chunks_added"] == 0
    missing = client.put("/documents/0123456789abcdef0123456789abcdef", files={"file": ("x.txt", b"x", "text/plain")})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_a_source_id_names_the_source_of_one_file(client):
    data = {"collection": "sourced", "source_id": "kb/harbour"}
    first = client.post(
        "/documents/upload", files=[("files", ("a.txt", b"Harbour rules, first.", "text/plain"))], data=data
    )
    second = client.post(
        "/documents/upload", files=[("files", ("b.txt", b"Harbour rules, second.", "text/plain"))], data=data
    )
    assert first.status_code == second.status_code == 200, second.text
    one, two = first.json()["files"][0], second.json()["files"][0]
    assert (one["status"], two["status"], two["version"]) == ("indexed", "updated", 2)
    assert one["document_id"] == two["document_id"] and two["source_id"] == "kb/harbour"
    two_files = [("files", ("a.txt", b"a", "text/plain")), ("files", ("b.txt", b"b", "text/plain"))]
    refused = client.post("/documents/upload", files=two_files, data=data)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_input"
    bad = client.post("/documents/upload", files=two_files[:1], data={"collection": "sourced", "source_id": "bad\nid"})
    assert bad.status_code == 400
