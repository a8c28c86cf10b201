"""The `rag` CLI end to end on real documents, with the real embedder, store and local LLMs."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.testing.profiles import copy_profile

RAG = str(Path(sys.executable).parent / "rag")
runner = CliRunner()


def _invoke(*args: str):
    result = runner.invoke(cli, list(args), catch_exceptions=False)
    return result


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    path = tmp_path / "data"
    monkeypatch.setenv("RAG_DATA_DIR", str(path))
    return path


@pytest.fixture
def tiny_profile(tmp_path, monkeypatch, make_tiny_profile):
    """The shipped pipelines with the tiny SmolLM2 model: fast tests of everything but answer quality."""
    target = make_tiny_profile(tmp_path / "pipelines-tiny", max_tokens=48)
    monkeypatch.setenv("RAG_PIPELINES_DIR", str(target))
    return target


def test_help_lists_commands():
    result = _invoke("--help")
    assert result.exit_code == 0
    for command in ("ingest", "ask", "collections", "warmup", "worker", "jobs"):
        assert command in result.output


def test_worker_needs_the_redis_queue(data_dir, monkeypatch):
    monkeypatch.setenv("RAG_JOB_QUEUE", "embedded")
    result = _invoke("worker")
    assert result.exit_code == 2 and "RAG_JOB_QUEUE=redis" in result.output


def test_bad_tag_and_missing_files_fail_cleanly(data_dir, tmp_path):
    assert _invoke("ingest", str(tmp_path / "nothing-here"), "--tag", "novalue").exit_code != 0
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _invoke("ingest", str(empty))
    assert result.exit_code == 2
    assert "no files" in result.output


def test_broken_pipeline_yaml_is_a_clear_startup_error(data_dir, tmp_path, monkeypatch):
    broken = copy_profile(tmp_path / "broken")
    (broken / "query.yml").write_text((broken / "query.yml").read_text().replace("RelevanceGate", "NoSuchGate"))
    monkeypatch.setenv("RAG_PIPELINES_DIR", str(broken))
    result = _invoke("ask", "anything")
    assert result.exit_code == 2
    assert "query.yml" in result.output and "gate" in result.output


@pytest.mark.integration
def test_ingest_ask_collections_with_tiny_model(data_dir, tiny_profile, docx_file, html_file, csv_file, tmp_path):
    bad = tmp_path / "broken.pdf"
    bad.write_bytes(b"%PDF-1.4 not really a pdf")
    result = _invoke("ingest", str(docx_file), str(html_file), str(csv_file), str(bad), "-c", "mixed", "-t", "team=qa")
    assert result.exit_code == 1, result.output  # one file failed, the others are indexed
    assert "failed broken.pdf" in " ".join(result.output.split())
    assert "3 of 4 files ok" in result.output
    again = _invoke("ingest", str(csv_file), "-c", "mixed")
    assert "unchanged" in again.output  # the same file name and bytes: the source's current version
    replaced = _invoke("ingest", str(csv_file), "-c", "mixed", "--replace")
    assert replaced.exit_code == 0 and "updated" in replaced.output and "version 2" in replaced.output

    listing = _invoke("collections")
    assert "mixed" in listing.output and " 3 " in listing.output

    search = _invoke("ask", "seattle weather precipitation", "-c", "mixed", "--search-only", "--json")
    assert search.exit_code == 0
    assert csv_file.name in search.output
    assert '"answer": null' in search.output

    streamed = _invoke("ask", "What does the weather data contain?", "-c", "mixed", "--stream", "-k", "3")
    assert streamed.exit_code == 0
    assert "retrieval" in streamed.output and "generation" in streamed.output

    filtered = _invoke(
        "ask",
        "weather",
        "-c",
        "mixed",
        "--search-only",
        "--filters",
        '{"field": "meta.team", "operator": "==", "value": "nobody"}',
        "--json",
    )
    assert '"sources": []' in filtered.output
    other = _invoke("ask", "weather", "-c", "other", "--search-only", "--json")
    assert '"sources": []' in other.output, "collections are isolated"


@pytest.mark.integration
@pytest.mark.slow
def test_real_pdf_question_with_default_model_cites_file_and_page(
    data_dir, r_intro_pdf, docx_file, html_file, csv_file
):
    result = _invoke("ingest", str(r_intro_pdf), str(docx_file), str(html_file), str(csv_file), "-c", "docs")
    assert result.exit_code == 0, result.output
    assert "4 of 4 files ok" in result.output

    answer = _invoke("ask", "How do you create a vector x containing 10.4, 5.6 and 3.1?", "-c", "docs", "--json")
    assert answer.exit_code == 0, answer.output
    payload = json.loads(answer.output)
    assert not payload["refused"]
    assert "c(10.4, 5.6, 3.1)" in payload["answer"], payload["answer"]
    cited = [s for s in payload["sources"] if s["cited"]]
    assert any(s["filename"] == "R-intro.pdf" and s["page"] == 14 and "c(10.4" in s["text"] for s in cited), payload
    assert any(claim["supported"] for claim in payload["claims"]), payload["claims"]  # checked against its [n]

    quit_answer = json.loads(
        _invoke("ask", "Which function is used to quit an R session?", "-c", "docs", "--json").output
    )
    assert "q()" in quit_answer["answer"] or "quit()" in quit_answer["answer"], quit_answer["answer"]
    assert any(s["filename"] == "R-intro.pdf" and s["page"] for s in quit_answer["sources"] if s["cited"])

    unknown = _invoke("ask", "What is the population of Ulaanbaatar in 2020?", "-c", "docs", "--json")
    payload = json.loads(unknown.output)
    assert payload["refused"]
    assert payload["answer"].startswith("I don't know")
    # refused by the relevance gate (no passages) or the answerability gate (the passages searched): none cited
    assert not any(source["cited"] for source in payload["sources"]), payload["sources"]
    assert payload["claims"] == []

    # a new process (a restart) sees every indexed document
    env = {**os.environ, "RAG_DATA_DIR": str(data_dir)}
    listing = subprocess.run([RAG, "collections"], env=env, capture_output=True, text=True, timeout=120, check=True)
    assert "docs" in listing.stdout and " 4 " in listing.stdout


def _doc_chunk_counts(data_dir: Path) -> dict[str, int]:
    from components.stores.lancedb.document_store import LanceDBDocumentStore

    store = LanceDBDocumentStore(path=str(data_dir / "lancedb"), table_name="chunks", partition_field="collection")
    counts: dict[str, int] = {}
    for doc in store.filter_documents():
        counts[doc.meta["file_name"]] = counts.get(doc.meta["file_name"], 0) + 1
    return counts


@pytest.mark.integration
@pytest.mark.slow
def test_kill_9_during_ingestion_leaves_a_consistent_store(tmp_path):
    html_dir = Path("/usr/share/doc/python3.11/html/library")
    files = sorted(html_dir.glob("*.html"))[:16]  # 1.7 MB: killed after 3, while the big argparse/ast pages index
    assert len(files) == 16, "python3.11-doc must be installed (scripts/apt-packages.txt)"
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for f in files:
        shutil.copy(f, corpus / f.name)

    killed_dir, reference_dir = tmp_path / "killed", tmp_path / "reference"
    env = {**os.environ, "RAG_DATA_DIR": str(killed_dir)}
    proc = subprocess.Popen([RAG, "ingest", str(corpus)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    written: dict[str, int] = {}
    while time.monotonic() < deadline and proc.poll() is None:
        if (killed_dir / "lancedb").exists():
            written = _doc_chunk_counts(killed_dir)
            if len(written) >= 3:
                break
        time.sleep(0.2)
    assert proc.poll() is None, "ingestion finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)

    after_kill = _doc_chunk_counts(killed_dir)
    assert 3 <= len(after_kill) < len(files)

    subprocess.run(
        [RAG, "ingest", str(corpus)],
        env={**os.environ, "RAG_DATA_DIR": str(reference_dir)},
        check=True,
        capture_output=True,
        timeout=900,
    )
    reference = _doc_chunk_counts(reference_dir)
    for name, count in after_kill.items():
        assert count == reference[name], f"{name}: {count} chunks after kill -9, {reference[name]} in a clean run"

    resumed = subprocess.run([RAG, "ingest", str(corpus)], env=env, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stdout
    assert resumed.stdout.count("unchanged") + resumed.stderr.count("unchanged") >= len(after_kill)
    assert _doc_chunk_counts(killed_dir) == reference


def test_keys_create_list_revoke(data_dir):
    from app.services.api_keys import KeyStore
    from app.settings import Settings

    created = _invoke("keys", "create", "--role", "writer", "--collections", "a,b", "--name", "uploader", "-q")
    assert created.exit_code == 0
    secret = created.output.strip()
    store = KeyStore(Settings().keys_db)
    key = store.authenticate(secret)
    assert key is not None and key.role.value == "writer" and key.collections == {"a", "b"}
    listed = _invoke("keys", "list")
    assert key.id in listed.output and "uploader" in listed.output and secret not in listed.output
    verbose = _invoke("keys", "create", "--role", "admin")
    assert "not shown again" in verbose.output and "collections *" in verbose.output
    assert _invoke("keys", "revoke", key.prefix).exit_code == 0
    assert store.authenticate(secret) is None
    assert key.id not in _invoke("keys", "list").output and key.id in _invoke("keys", "list", "--all").output


def test_keys_create_with_principals(data_dir):
    from app.services.api_keys import KeyStore
    from app.settings import Settings

    created = _invoke(
        "keys", "create", "--role", "reader", "--principal", "user:alice", "--principal", "group:eng", "-q"
    )
    assert created.exit_code == 0, created.output
    key = KeyStore(Settings().keys_db).authenticate(created.output.strip())
    assert key is not None and key.principals == {"user:alice", "group:eng"}
    assert (
        "reads group:eng,user:alice"
        in _invoke("keys", "create", "--role", "reader", "--principal", "user:alice", "--principal", "group:eng").output
    )
    refused = _invoke("keys", "create", "--role", "reader", "--principal", "eng")
    assert refused.exit_code == 2 and "principal" in refused.output


def test_keys_create_of_a_tenant(data_dir):
    from app.services.api_keys import KeyStore
    from app.settings import Settings

    created = _invoke("keys", "create", "--role", "admin", "--tenant", "acme", "--name", "acme-admin")
    assert created.exit_code == 0 and "tenant acme" in created.output, created.output
    [key] = KeyStore(Settings().keys_db).list()
    assert key.tenant == "acme" and key.role.value == "admin"
    assert "acme" in _invoke("keys", "list").output
    bad = _invoke("keys", "create", "--role", "reader", "--tenant", "ac me")
    assert bad.exit_code == 2 and "tenant" in bad.output


def test_keys_generate_prints_a_fresh_key_and_stores_nothing(data_dir):
    from app.services.api_keys import KEY_PATTERN, KeyStore
    from app.settings import Settings

    first, second = _invoke("keys", "generate"), _invoke("keys", "generate")
    assert first.exit_code == 0 and second.exit_code == 0
    assert KEY_PATTERN.fullmatch(first.output.strip()) and first.output != second.output
    assert KeyStore(Settings().keys_db).list(include_revoked=True) == []


def test_jobs_sweep_removes_the_uploads_of_old_failed_jobs(data_dir, monkeypatch):
    from app.jobs import FileState, JobService, JobState, JobStore, UploadedFile
    from app.settings import Settings

    monkeypatch.setenv("RAG_JOB_RETENTION_DAYS", "7")
    settings = Settings()
    now = time.time()
    past = JobService(JobStore(settings.jobs_db, clock=lambda: now - 8 * 86_400), settings.jobs_dir)
    old = past.submit("c", {}, [UploadedFile(filename="a.txt", content_type=None, data=b"a" * 2048)]).id
    past.store.update_file(old, 0, state=FileState.FAILED)
    past.store.set_state(old, JobState.FAILED)  # finished eight days ago
    assert (settings.jobs_dir / old / "0").exists()

    result = _invoke("jobs", "sweep")
    assert result.exit_code == 0, result.output
    assert "uploads of 1 finished jobs removed (older than 7 days)" in result.output
    assert "1 spool folders removed" in result.output
    assert not (settings.jobs_dir / old).exists()
    assert not JobStore(settings.jobs_db).get(old).files[0].spooled
    assert "uploads of 0 finished jobs removed" in _invoke("jobs", "sweep").output


def test_keys_bad_input_fails_cleanly(data_dir):
    assert _invoke("keys", "create", "--role", "root").exit_code == 2
    bad_scope = _invoke("keys", "create", "--role", "reader", "--collections", "../etc")
    assert bad_scope.exit_code == 2 and "invalid collection name" in bad_scope.output
    assert _invoke("keys", "revoke", "ffffffffffff").exit_code == 2


def test_dev_mode_refuses_a_public_bind_address(data_dir, monkeypatch):
    monkeypatch.setenv("RAG_DEV_MODE", "true")
    refused = _invoke("serve", "--host", "0.0.0.0")
    assert refused.exit_code == 2 and "loopback" in refused.output
