"""docs/openai.md runs verbatim with the official `openai` SDK against a real `rag serve` and the default model, on
the embedded store and on PostgreSQL + pgvector; a key scoped to that vector store cannot see another one."""

from __future__ import annotations

import contextlib
import io
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import OpenAI
from openai.types import FileObject, VectorStore
from openai.types.responses import Response

from app.testing.servers import rag_command, rag_environment, rag_server

ROOT = Path(__file__).resolve().parents[3]
PAGE = ROOT / "docs" / "openai.md"

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def page_blocks() -> list[str]:
    """The page's Python blocks, in order."""
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)


@pytest.fixture(
    scope="module", params=[pytest.param("default", id="lancedb"), pytest.param("pgvector", marks=pytest.mark.postgres)]
)
def served(request, tmp_path_factory) -> Iterator[dict[str, str]]:
    """A `rag serve` with the shipped pipelines of the profile, auth on; its URL and an admin key."""
    data = tmp_path_factory.mktemp(f"sdk-{request.param}")
    env: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        if request.param == "pgvector":
            dsn = request.getfixturevalue("pg_dsn")
            env = {"RAG_PROFILE": "pgvector", "PG_CONN_STR": dsn}
        command_env = rag_environment(data, None, env, auth=True)
        key = rag_command("keys", "create", "--role", "admin", "--name", "sdk", "--quiet", env=command_env)
        server = stack.enter_context(rag_server(None, data, env=env, auth=True, seconds=300))
        yield {"url": server.url, "key": key, "data": str(data), **env}


def run_page(served: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], str]:
    """Execute the page's blocks in one namespace, as a user pasting them would; their printed output."""
    monkeypatch.setenv("RAG_URL", served["url"])
    monkeypatch.setenv("RAG_API_KEY", served["key"])
    namespace: dict[str, Any] = {"__name__": "docs_openai"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for block in page_blocks():
            exec(compile(block, str(PAGE), "exec"), namespace)  # the page's own examples
    return namespace, out.getvalue()


# our documented extension fields, by SDK type: anything else left over would be a field the SDK does not know
EXTENSIONS = {
    "Response": {"refused", "claims", "store", "standalone_question"},
    "ParsedResponse": {"refused", "claims", "store", "standalone_question"},  # what `responses.stream` returns
    "VectorStoreSearchResponse": {"page", "document_id", "chunk_id"},
}


def strictly_parsed(reply: Any) -> None:
    """The reply validates strictly as its SDK type (the SDK itself builds its objects without validation, so a
    missing required field would go unnoticed) and carries no field beyond our documented extensions."""
    kind = type(reply)
    kind.model_validate(reply.model_dump(mode="json", exclude_unset=True))
    assert set(reply.model_extra or {}) <= EXTENSIONS.get(kind.__name__, set()), (kind.__name__, reply.model_extra)


def test_the_page_runs_verbatim_and_every_reply_parses(served, monkeypatch):
    ns, printed = run_page(served, monkeypatch)
    for name in ("uploaded", "store", "batch", "response", "final", "follow_up"):
        strictly_parsed(ns[name])
    for result in ns["results"]:
        strictly_parsed(result)
    assert isinstance(ns["uploaded"], FileObject) and ns["uploaded"].filename == "R-intro.pdf"
    assert isinstance(ns["store"], VectorStore)
    assert ns["batch"].status == "completed" and ns["batch"].file_counts.completed == 1
    results = list(ns["results"])
    assert results and all(0.0 <= r.score <= 1.0 and r.filename == "R-intro.pdf" for r in results)
    assert any("q()" in r.content[0].text for r in results)
    response: Response = ns["response"]
    assert "c(10.4, 5.6, 3.1)" in response.output_text.replace(" ", "").replace(",", ", ")
    annotations = response.output[-1].content[0].annotations
    assert annotations and all(a.type == "file_citation" and a.file_id == ns["uploaded"].id for a in annotations)
    final: Response = ns["final"]
    assert final.output_text.strip() and final.output_text in printed  # the printed deltas add up to the answer
    assert "hist" in final.output_text
    follow_up: Response = ns["follow_up"]
    assert follow_up.previous_response_id == response.id
    standalone = follow_up.model_extra["standalone_question"]
    assert standalone != "And how do I sort it?" and re.search(r"\b(x|vector)\b", standalone), standalone
    assert "sort(" in follow_up.output_text
    assert "completed 1" in printed


def test_a_key_scoped_to_one_store_does_not_see_another(served, monkeypatch):
    admin = OpenAI(base_url=served["url"] + "/v1", api_key=served["key"], max_retries=0)
    mine = admin.vector_stores.create(name=f"mine-{uuid.uuid4().hex[:6]}")
    other = admin.vector_stores.create(name="other")
    env = rag_environment(Path(served["data"]), None, {k: v for k, v in served.items() if k.isupper()}, auth=True)
    scoped_key = rag_command(
        "keys", "create", "--role", "reader", "--name", "scoped", "--collections", mine.id, "--quiet", env=env
    )
    scoped = OpenAI(base_url=served["url"] + "/v1", api_key=scoped_key, max_retries=0)
    assert [s.id for s in scoped.vector_stores.list()] == [mine.id]
    assert scoped.vector_stores.retrieve(mine.id).id == mine.id
    with pytest.raises((openai.NotFoundError, openai.PermissionDeniedError)):
        scoped.vector_stores.retrieve(other.id)
    with pytest.raises((openai.NotFoundError, openai.PermissionDeniedError)):
        scoped.vector_stores.search(other.id, query="anything")
    with pytest.raises((openai.NotFoundError, openai.PermissionDeniedError)):
        scoped.responses.create(
            model="rag", input="anything", tools=[{"type": "file_search", "vector_store_ids": [other.id]}]
        )
    assert os.environ.get("RAG_API_KEY") != scoped_key
