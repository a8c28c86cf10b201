"""The MCP server at /mcp, driven by the official `mcp` client against a served app (`rag serve`, auth on): the three
tools, their structured results, and the API keys' scopes on every call."""

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import httpx
import httpx2
import pytest
from fastapi.testclient import TestClient
from haystack import Document
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from app.api.mcp import _document_chunks, merge_chunks
from app.main import create_app
from app.services.api_keys import DEV_KEY
from app.settings import PROJECT_ROOT
from app.testing.api import admin_headers
from app.testing.servers import rag_server

# Each page opens and closes with a line without a number: with `remove_running_lines` on, the PDF converter removes
# a first or last line such as "Page 2 line 0: ..." on every page as a running header (running_lines.py).
PAGES = {
    page: [
        f"The {name} lighthouse register",
        *(
            f"Page {page} line {i}: the keeper of lighthouse {page} writes entry {i} in the register."
            for i in range(40)
        ),
        f"End of the {name} register",
    ]
    for page, name in ((1, "north"), (2, "harbour"), (3, "reef"))
}
BETA_TEXT = b"The orchard keeper prunes the pear trees in March and records the harvest of every row in a ledger."


def text_pdf(pages: list[list[str]]) -> bytes:
    """A PDF with a text layer: one page per list of lines (Helvetica, no compression)."""
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    kids = []
    for lines in pages:
        text = b" ".join(b"(%s) Tj T*" % line.encode("latin-1") for line in lines)
        ops = b"BT /F1 9 Tf 11 TL 40 800 Td " + text + b" ET"
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(ops), ops))
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >> "
            b"/Contents %d 0 R >>" % len(objects)
        )
        kids.append(len(objects))
    objects[1] = b"<< /Type /Pages /Count %d /Kids [%s] >>" % (len(kids), b" ".join(b"%d 0 R" % k for k in kids))
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    start = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, start)
    return bytes(out)


# -- fetch's page text, rebuilt from overlapping chunks (no server) ---------------------------------------------------


def test_merge_chunks_keeps_the_splitters_overlap_once():
    text = " ".join(f"sentence number {i} of the page." for i in range(200))
    chunks = [text[0:1000], text[800:1800], text[1600:2600], text[2400:]]
    assert merge_chunks(chunks) == text


def test_merge_chunks_joins_chunks_without_overlap_by_a_line_break():
    assert merge_chunks(["The first chunk ends here.", "A second chunk shares nothing with it."]) == (
        "The first chunk ends here.\nA second chunk shares nothing with it."
    )
    assert merge_chunks([]) == ""


def test_fetch_reads_only_the_newest_version_while_a_store_holds_two():
    """Weaviate and Pinecone write a new version before they delete the previous one: a fetch in between reads the
    document's chunks of its newest version only, never a page of each."""

    def chunk(cid: str, version: int, text: str) -> Document:
        meta = {"collection": "c", "document_id": "d" * 32, "source_id": "a.txt", "version": version, "page": 1}
        return Document(id=cid, content=text, meta=meta)

    stored = [chunk("old", 1, "The old text."), chunk("new", 2, "The new text.")]
    state = SimpleNamespace(documents=SimpleNamespace(store=SimpleNamespace(filter_documents=lambda filters: stored)))

    chunks = _document_chunks(state, DEV_KEY, "d" * 32)  # type: ignore[arg-type]

    assert [c.id for c in chunks] == ["new"]


# -- in-process: the route and its key check -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store_profile():
    """The transport and auth do not depend on the store: one is enough."""
    return "default"


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-06-18"}


def test_mcp_needs_a_key_and_is_not_in_the_openapi_schema(api_settings):
    headers = admin_headers(api_settings.data_dir)
    with TestClient(create_app(api_settings)) as client:
        for method in ("POST", "GET", "DELETE"):
            refused = client.request(method, "/mcp", json=INITIALIZE, headers=MCP_HEADERS)
            assert refused.status_code == 401, refused.text
            assert refused.json()["error"]["code"] == "unauthorized"
            assert refused.headers["WWW-Authenticate"] == "Bearer"
        forged = {**MCP_HEADERS, "Authorization": headers["Authorization"][:-4] + "AAAA"}
        assert client.post("/mcp", json=INITIALIZE, headers=forged).status_code == 401
        for key_headers in (headers, {"X-API-Key": headers["Authorization"].removeprefix("Bearer ")}):
            accepted = client.post("/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **key_headers})
            assert accepted.status_code == 200, accepted.text
            assert accepted.json()["result"]["serverInfo"]["name"] == "ragstack"
        assert not any(path.startswith("/mcp") for path in client.get("/openapi.json").json()["paths"])
        metrics = client.get("/metrics", headers=headers).text
    assert re.search(r'rag_http_requests_total\{method="POST",route="/mcp",status="200"\} [1-9]', metrics)


def test_dev_mode_needs_no_key(api_settings):
    settings = api_settings.model_copy(update={"dev_mode": True})
    with TestClient(create_app(settings)) as client:
        assert client.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS).status_code == 200
        call = {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "search", "arguments": {"query": "anything", "collection": "nothing-here"}},
        }
        reply = client.post("/mcp", json=call, headers=MCP_HEADERS).json()["result"]
    assert reply.get("isError") is not True, reply
    assert reply["structuredContent"] == {"collection": "nothing-here", "passages": []}


# -- served: the official client against `rag serve` ----------------------------------------------------------------


@dataclass
class Served:
    url: str
    data_dir: Path
    admin: dict[str, str]
    alpha_document: str
    beta_document: str

    def key(self, role: str = "reader", *collections: str) -> dict[str, str]:
        return admin_headers(self.data_dir, role=role, collections=frozenset(collections) or None)


@pytest.fixture(scope="module")
def served(make_tiny_profile, tmp_path_factory) -> Served:
    root = tmp_path_factory.mktemp("mcp")
    data_dir = root / "data"
    with rag_server(make_tiny_profile(root / "pipelines"), data_dir, auth=True) as server:
        admin = admin_headers(data_dir)
        documents = {}
        with httpx.Client(base_url=server.url, headers=admin, timeout=180) as http:
            uploads = {
                "alpha": ("lighthouses.pdf", text_pdf(list(PAGES.values())), "application/pdf"),
                "beta": ("orchard.txt", BETA_TEXT, "text/plain"),
            }
            for collection, upload in uploads.items():
                response = http.post("/documents/upload", files=[("files", upload)], data={"collection": collection})
                assert response.status_code == 200, response.text
                assert response.json()["files"][0]["status"] == "indexed", response.text
                documents[collection] = response.json()["files"][0]["document_id"]
        yield Served(server.url, data_dir, admin, documents["alpha"], documents["beta"])


@contextlib.asynccontextmanager
async def mcp_session(served: Served, headers: dict[str, str]) -> AsyncIterator[ClientSession]:
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300)) as http,
        streamable_http_client(f"{served.url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


@pytest.mark.integration
@pytest.mark.slow
async def test_the_three_tools_are_listed_with_their_schemas(served):
    async with mcp_session(served, served.key("reader")) as session:
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    assert set(tools) == {"search", "fetch", "answer"}
    assert tools["search"].input_schema["required"] == ["query"]
    assert tools["fetch"].input_schema["required"] == ["document_id"]
    assert tools["answer"].input_schema["required"] == ["question"]
    for tool in tools.values():
        assert tool.description and tool.output_schema
        assert all(spec.get("description") for spec in tool.input_schema["properties"].values())
        assert tool.annotations is not None and tool.annotations.read_only_hint


@pytest.mark.integration
@pytest.mark.slow
async def test_search_returns_passages_with_file_page_and_score(served):
    async with mcp_session(served, served.key("reader", "alpha")) as session:
        result = await session.call_tool(
            "search", {"query": "lighthouse 2 entry 17", "collection": "alpha", "top_k": 3}
        )
    assert not result.is_error, result.content
    passages = result.structured_content["passages"]
    assert len(passages) == 3 and [p["n"] for p in passages] == [1, 2, 3]
    best = passages[0]
    assert best["file"] == "lighthouses.pdf" and best["document_id"] == served.alpha_document
    assert best["page"] in PAGES and best["score"] is not None and best["chunk_id"]
    assert best["text"] in "\n".join(PAGES[best["page"]])
    assert '"lighthouses.pdf"' in result.content[0].text  # the same result as text, for clients without structure


@pytest.mark.integration
@pytest.mark.slow
async def test_fetch_returns_a_page_or_every_page(served):
    async with mcp_session(served, served.key("reader", "alpha")) as session:
        one = await session.call_tool("fetch", {"document_id": served.alpha_document, "page": 2})
        every = await session.call_tool("fetch", {"document_id": served.alpha_document})
        short = await session.call_tool("fetch", {"document_id": served.alpha_document, "max_chars": 100})
        missing_page = await session.call_tool("fetch", {"document_id": served.alpha_document, "page": 9})
    assert not one.is_error, one.content
    page = one.structured_content
    assert page["file"] == "lighthouses.pdf" and page["collection"] == "alpha" and page["page_numbers"] == [1, 2, 3]
    assert [p["page"] for p in page["pages"]] == [2] and not page["truncated"]
    assert page["pages"][0]["text"] == "\n".join(PAGES[2])  # the chunks' overlaps are not repeated
    assert [p["text"] for p in every.structured_content["pages"]] == ["\n".join(lines) for lines in PAGES.values()]
    assert short.structured_content["truncated"] and len(short.structured_content["pages"][0]["text"]) == 100
    assert missing_page.is_error and "no page 9" in missing_page.content[0].text


@pytest.mark.integration
@pytest.mark.slow
async def test_answer_cites_its_passages(served):
    async with mcp_session(served, served.key("reader", "alpha")) as session:
        result = await session.call_tool(
            "answer", {"question": "What does the keeper of lighthouse 3 write?", "collection": "alpha", "top_k": 2}
        )
    assert not result.is_error, result.content
    answer = result.structured_content
    assert isinstance(answer["answer"], str) and isinstance(answer["refused"], bool)
    assert [c["n"] for c in answer["citations"]] == [1, 2]
    for citation in answer["citations"]:
        assert citation["file"] == "lighthouses.pdf" and citation["page"] in PAGES and citation["passage"]
    assert isinstance(answer["claims"], list)


@pytest.mark.integration
@pytest.mark.slow
async def test_a_scoped_key_gets_tool_errors_outside_its_collections(served):
    async with mcp_session(served, served.key("reader", "alpha")) as session:
        searched = await session.call_tool("search", {"query": "pear trees", "collection": "beta"})
        answered = await session.call_tool("answer", {"question": "When are pear trees pruned?", "collection": "beta"})
        default = await session.call_tool("search", {"query": "pear trees"})  # the default collection is not alpha
        hidden = await session.call_tool("fetch", {"document_id": served.beta_document})
        unknown = await session.call_tool("fetch", {"document_id": "0" * 32})
        own = await session.call_tool("search", {"query": "lighthouse", "collection": "alpha"})
    for refused in (searched, answered):
        assert refused.is_error
        assert "forbidden: this API key may not use collection 'beta'" in refused.content[0].text
    assert default.is_error and "forbidden" in default.content[0].text
    # another collection's document is answered exactly as one that does not exist
    assert hidden.is_error and unknown.is_error
    assert hidden.content[0].text.replace(served.beta_document, "ID") == unknown.content[0].text.replace("0" * 32, "ID")
    assert "not_found" in hidden.content[0].text
    assert not own.is_error and own.structured_content["passages"]
    async with mcp_session(served, served.key("reader", "beta")) as session:
        fetched = await session.call_tool("fetch", {"document_id": served.beta_document})
    assert fetched.structured_content["pages"] == [{"page": None, "text": BETA_TEXT.decode()}]


@pytest.mark.integration
@pytest.mark.slow
async def test_bad_arguments_are_tool_errors(served):
    async with mcp_session(served, served.key("reader")) as session:
        results = [
            await session.call_tool("search", {"query": "x", "collection": "Not A Name"}),
            await session.call_tool("search", {"query": "x", "collection": "alpha", "top_k": 10_000}),
            await session.call_tool("search", {"query": "x", "collection": "alpha", "filters": {"field": "x"}}),
            await session.call_tool("search", {"query": "", "collection": "alpha"}),
            await session.call_tool("fetch", {"document_id": "../../etc/passwd"}),
            await session.call_tool("search", {"collection": "alpha"}),
        ]
    for result in results:
        assert result.is_error, result
    assert "invalid_input" in results[0].content[0].text


@pytest.mark.integration
@pytest.mark.slow
async def test_without_a_key_or_with_a_revoked_one_the_client_is_refused(served):
    reader = served.key("reader")
    async with mcp_session(served, reader) as session:
        assert not (await session.call_tool("search", {"query": "lighthouse", "collection": "alpha"})).is_error
    key_id = reader["Authorization"].removeprefix("Bearer rag_").split("_", 1)[0]
    assert httpx.delete(f"{served.url}/keys/{key_id}", headers=served.admin, timeout=30).status_code == 204
    for headers in (reader, {}):
        response = httpx.post(f"{served.url}/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **headers}, timeout=30)
        assert response.status_code == 401, response.text
    for headers in (reader, {}):
        with pytest.raises(ExceptionGroup) as refused:  # the client's task group ends on the HTTP 401
            async with mcp_session(served, headers):
                pass
        assert refused.group_contains(MCPError, match="error response", depth=2)


def _docs_snippet() -> str:
    page = (PROJECT_ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    section = page[page.index("\n## MCP\n") :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "docs/api.md has no python block under '## MCP'"
    return match.group(1)


@pytest.mark.integration
@pytest.mark.slow
def test_the_docs_client_snippet_runs(served, tmp_path):
    """docs/api.md's MCP client, verbatim but for the server's address."""
    pdf = ("lighthouses.pdf", text_pdf(list(PAGES.values())), "application/pdf")
    upload = httpx.post(
        f"{served.url}/documents/upload", files=[("files", pdf)], data={"collection": "docs"}, headers=served.admin
    )
    assert upload.status_code == 200, upload.text
    script = tmp_path / "client.py"
    script.write_text(_docs_snippet().replace("http://127.0.0.1:8000", served.url), encoding="utf-8")
    key = served.key("reader", "docs")["Authorization"].removeprefix("Bearer ")
    result = subprocess.run(
        [sys.executable, str(script)],
        env={**os.environ, "RAG_API_KEY": key},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("lighthouses.pdf ") and "the keeper of lighthouse" in result.stdout
