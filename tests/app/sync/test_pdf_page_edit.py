"""The issue's measure of incremental sync through the real indexing pipeline: a 100-page PDF in a folder source is
synced, one page is edited, and the next run embeds only that page's chunks (the embedder's documents are counted).

It runs on the versioned documents of issue 17: `IngestService.ingest_bytes(..., source_id=..., access=...)` with
chunk-level embedding reuse, and `remove_source`."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from app.composition import build_services, embedded_job_runner
from app.services.collections import collection_filter
from app.settings import Settings
from app.sync.models import SourceKind
from app.testing.sync import text_pdf

MARKER = "lighthouse-edited-page"


def pages(changed: int | None = None) -> list[str]:
    return [
        (f"{MARKER} " if n == changed else "")
        + f"Page {n + 1}. The keeper of light {n + 1} logs every ship passing the cape, its flag and its cargo, "
        f"then trims the wick of lamp {n + 1} before the tide turns at hour {n % 12 + 1}."
        for n in range(100)
    ]


@pytest.mark.integration
@pytest.mark.parametrize("store_profile", ["default", pytest.param("pgvector", marks=pytest.mark.postgres)])
def test_editing_one_page_of_a_100_page_pdf_re_embeds_only_that_pages_chunks(
    tmp_path, make_tiny_profile, monkeypatch, store_profile, request
):
    if store_profile == "pgvector":
        monkeypatch.setenv("PG_CONN_STR", request.getfixturevalue("pg_dsn"))
    settings = Settings(
        data_dir=tmp_path / "data", pipelines_dir=make_tiny_profile(tmp_path / "pipelines", profile=store_profile)
    )
    services = build_services(settings)
    services.pipelines.indexing.pipeline.warm_up()
    embedder = services.pipelines.indexing.pipeline.get_component("embedder")
    embedded: list[int] = []
    original = embedder.run

    def counting_run(documents: list[Any], **kwargs: Any) -> Any:
        embedded.append(len(documents))
        return original(documents=documents, **kwargs)

    monkeypatch.setattr(embedder, "run", counting_run)
    folder = settings.sync_root_paths[0] / "manual"
    folder.mkdir(parents=True)
    (folder / "manual.pdf").write_bytes(text_pdf(pages()))
    collection = f"manual-{uuid.uuid4().hex[:8]}"  # the pgvector table is shared with other tests
    source = services.sources.create(collection=collection, kind=SourceKind.FOLDER, location="manual")
    runner = embedded_job_runner(services)

    def sync() -> dict[str, str]:
        run = services.sources.start_run(source.id)
        runner.run(run.id)
        assert services.sources.run(run.id).state == "done"
        return {e.key: e.outcome.value for e in services.sources.run_entries(run.id)}

    assert sync() == {"manual.pdf": "added"}
    chunks = services.pipelines.document_store.filter_documents(collection_filter(collection))
    assert sum(embedded) == len(chunks) >= 100

    embedded.clear()
    (folder / "manual.pdf").write_bytes(text_pdf(pages(changed=49)))
    assert sync() == {"manual.pdf": "updated"}
    chunks = services.pipelines.document_store.filter_documents(collection_filter(collection))
    changed = [c for c in chunks if MARKER in (c.content or "")]
    assert changed and sum(embedded) == len(changed)  # only the edited page's chunks were embedded again
    assert len({c.meta.get("version") for c in chunks}) == 1  # no mix of the old and the new version
    assert all("Page 50." in (c.content or "") for c in changed)

    embedded.clear()
    (folder / "manual.pdf").unlink()  # deleted: its chunks vanish on the next run
    assert sync() == {"manual.pdf": "removed"}
    assert services.pipelines.document_store.filter_documents(collection_filter(collection)) == []
    assert embedded == []
