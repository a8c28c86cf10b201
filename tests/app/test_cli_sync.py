"""`rag sync add|list|run|runs|remove` and `rag sync --due`, over the same services as the API. The documents are
ingested through `FakeIngestService` (the versioned-document contract): `app.composition.ingest_adapter` is pointed at
it."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from app import cli as cli_module
from app import composition
from app.cli import cli
from app.sync.runner import ingest_adapter
from app.testing.sync import FakeIngestService

runner = CliRunner()


def rag(*args: str):
    return runner.invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def data_dir(tmp_path, monkeypatch, make_tiny_profile):
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RAG_PIPELINES_DIR", str(make_tiny_profile(tmp_path / "pipelines")))
    return tmp_path / "data"


@pytest.fixture
def fake(monkeypatch) -> FakeIngestService:
    ingest = FakeIngestService()
    adapter = lambda _service, collection: ingest_adapter(ingest, collection)  # noqa: E731
    monkeypatch.setattr(composition, "ingest_adapter", adapter)
    monkeypatch.setattr(cli_module, "ingest_adapter", adapter)
    return ingest


def test_add_run_runs_list_remove(data_dir, fake):
    folder = data_dir / "sources" / "notes"
    folder.mkdir(parents=True)
    (folder / "a.txt").write_text("alpha")
    (folder / "b.md").write_text("bravo")
    added = rag("sync", "add", "notes", "--folder", "notes", "--include", "*.txt", "--access", "group:eng")
    assert added.exit_code == 0, added.output
    source_id = added.output.strip()
    assert source_id.startswith("src_")
    listed = rag("sync", "list")
    assert source_id in listed.output and "manual" in listed.output

    ran = rag("sync", "run", source_id)
    assert ran.exit_code == 0, ran.output
    assert "done" in ran.output and "1 added" in ran.output
    assert fake.of("notes").ingested() == ["a.txt"] and fake.of("notes").documents["a.txt"].access == ["group:eng"]

    (folder / "a.txt").unlink()
    assert "1 removed" in rag("sync", "run", source_id).output
    runs = rag("sync", "runs", source_id, "--entries")
    assert runs.exit_code == 0 and "2 of 2 runs" in runs.output
    assert "removed   a.txt" in runs.output and "added     a.txt" in runs.output

    removed = rag("sync", "remove", source_id)
    assert removed.exit_code == 0 and "deleted" in removed.output
    assert source_id not in rag("sync", "list").output


def test_due_sources_run_from_the_command_line(data_dir, fake):
    folder = data_dir / "sources" / "due"
    folder.mkdir(parents=True)
    (folder / "a.txt").write_text("alpha")
    source_id = rag("sync", "add", "due", "--folder", str(folder), "--interval", "3600").output.strip()
    first = rag("sync", "--due")
    assert first.exit_code == 0 and "1 due sources queued" in first.output and "1 added" in first.output
    assert "0 due sources queued" in rag("sync", "--due").output  # the next one is an hour away
    assert source_id in rag("sync", "list").output


def test_refused_locations_fail_cleanly(data_dir, tmp_path):
    outside = rag("sync", "add", "c", "--folder", str(tmp_path))
    assert outside.exit_code == 2 and "outside the allowed roots" in outside.output
    both = rag("sync", "add", "c", "--folder", "x", "--url", "https://example.com/")
    assert both.exit_code == 2 and "exactly one" in both.output
    private = rag("sync", "add", "c", "--url", "http://10.0.0.1/")
    assert private.exit_code == 2 and "not a public one" in private.output
    assert rag("sync", "run", "src_" + "0" * 24).exit_code == 2
