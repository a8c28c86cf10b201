"""The composition root: the API, the CLI and eval build their services in one place, so settings mean the same
thing on every path (the three drift bugs below were found by using the CLI as a new user would)."""

import os
import re

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.cli import cli
from app.composition import build_services, eval_services
from app.main import create_app
from app.settings import PROJECT_ROOT, Settings

runner = CliRunner()
CONSTRUCTED = re.compile(
    r"\b(IngestService|QueryService|JobService|JobRunner|CollectionService|KeyStore|DocumentRegistry)\("
)


def test_only_the_composition_root_constructs_services():
    """`git grep` finds one place that builds the services (the classes' own modules define them)."""
    builders = set()
    for path in sorted((PROJECT_ROOT / "app").rglob("*.py")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if CONSTRUCTED.search(line) and not line.lstrip().startswith(("class ", "#")):
                builders.add(path.relative_to(PROJECT_ROOT).as_posix())
    assert builders == {"app/composition.py"}


@pytest.fixture
def tiny_settings(tmp_path, make_tiny_profile, monkeypatch):
    pipelines = make_tiny_profile(tmp_path / "pipelines")
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RAG_PIPELINES_DIR", str(pipelines))
    return Settings()


def test_services_take_their_limits_from_settings(tiny_settings):
    settings = tiny_settings.model_copy(
        update={"max_pdf_pages": 3, "max_question_chars": 8000, "max_top_k": 9, "default_top_k": 4}
    )
    services = build_services(settings)
    assert services.ingest.limits.max_pdf_pages == 3
    assert (services.query.max_question_chars, services.query.max_top_k, services.query.default_top_k) == (8000, 9, 4)
    evaluation = eval_services(settings, settings.pipelines_dir, settings.data_dir / "eval")
    assert evaluation.settings.data_dir == settings.data_dir / "eval"
    assert evaluation.ingest.limits.max_pdf_pages == 3


def test_eval_services_load_models_from_the_deployments_model_dir(tiny_settings):
    """`rag eval --data-dir $(mktemp -d)` must not reassemble the 1.1 GB GGUF into every fresh eval directory."""
    settings = tiny_settings.model_copy(update={"model_dir": None})
    evaluation = eval_services(settings, settings.pipelines_dir, settings.data_dir / "eval")
    assert evaluation.settings.model_cache_dir == settings.data_dir / "models"
    assert os.environ["RAG_MODEL_DIR"] == str((settings.data_dir / "models").resolve())


@pytest.mark.postgres
def test_keys_collections_and_documents_live_in_postgresql_with_a_state_url_but_eval_keeps_its_own(
    tiny_settings, pg_schema_url
):
    settings = tiny_settings.model_copy(update={"state_url": pg_schema_url})
    services = build_services(settings)
    stores = (services.keys.db, services.collections.registry, services.ingest.registry, services.documents.registry)
    assert [getattr(store, "db", store).dialect for store in stores] == ["postgres"] * 4
    evaluation = eval_services(settings, settings.pipelines_dir, settings.data_dir / "eval")
    assert evaluation.keys.db.dialect == "sqlite" and evaluation.ingest.registry is not None
    assert evaluation.ingest.registry.db.path == settings.data_dir / "eval" / "documents.db"


@pytest.mark.integration
def test_cli_and_api_refuse_the_same_over_limit_pdf_with_the_same_reason(tiny_settings, multipage_pdf, monkeypatch):
    """RAG_MAX_PDF_PAGES=3: the 6-page PDF is refused by `rag ingest` exactly as by the upload route."""
    monkeypatch.setenv("RAG_MAX_PDF_PAGES", "3")
    from app.testing.api import admin_headers

    settings = Settings()
    with TestClient(create_app(settings), headers=admin_headers(settings.data_dir)) as client:
        response = client.post("/documents/upload", files=[("files", (multipage_pdf.name, multipage_pdf.read_bytes()))])
        assert response.status_code == 413, response.text
        (refused,) = response.json()["error"]["detail"]["files"]
        api_reason = refused["error"]
        assert client.app.state.rag.pipelines.document_store.count_documents() == 0
    assert "more than the limit of 3" in api_reason
    result = runner.invoke(cli, ["ingest", str(multipage_pdf)], catch_exceptions=False)
    assert result.exit_code != 0, result.output
    assert api_reason in " ".join(result.output.split())
    assert build_services(Settings()).pipelines.document_store.count_documents() == 0


@pytest.mark.integration
def test_rag_ingest_uses_the_default_collection_setting(tiny_settings, tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_DEFAULT_COLLECTION", "handbook")
    note = tmp_path / "note.txt"
    note.write_text("The kettle warranty lasts two years from the date of purchase.\n", encoding="utf-8")
    result = runner.invoke(cli, ["ingest", str(note)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "-> 'handbook'" in result.output
    names = {info.name: info.chunks for info in build_services(Settings()).collections.list()}
    assert names.get("handbook", 0) >= 1 and "default" not in names


def test_max_question_chars_raises_and_lowers_the_query_limit(tiny_settings):
    from app.testing.api import admin_headers

    headers = admin_headers(tiny_settings.data_dir)
    question = "q" * 6000
    with TestClient(create_app(tiny_settings.model_copy(update={"max_question_chars": 8000})), headers=headers) as c:
        assert c.post("/query", json={"question": question, "generate": False}).status_code == 200
        over = c.post("/query", json={"question": "q" * 8001, "generate": False})
        assert over.status_code == 400 and "longer than 8000 characters" in over.json()["error"]["message"]
    with TestClient(create_app(tiny_settings.model_copy(update={"max_question_chars": 100})), headers=headers) as c:
        under = c.post("/query", json={"question": "q" * 101, "generate": False})
        assert under.status_code == 400 and "longer than 100 characters" in under.json()["error"]["message"]


def test_request_schemas_do_not_restate_limits_that_settings_own(tmp_path):
    schema = create_app(Settings(data_dir=tmp_path)).openapi()["components"]["schemas"]
    question = schema["QueryRequest"]["properties"]["question"]
    assert "maxLength" not in question
    top_k = schema["QueryRequest"]["properties"]["top_k"]
    assert "maximum" not in str(top_k)
