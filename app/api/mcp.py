"""The MCP server (Model Context Protocol over streamable HTTP) at `/mcp`: tools `search`, `fetch` and `answer` for
agents, over the same services, API keys and scopes as the REST routes.

- Transport: the official SDK's `MCPServer`, stateless, with JSON responses: every POST is complete in itself (no
  session to keep, any replica can answer it). Its session manager starts and stops with the app (`mcp_sessions`, in
  the app's lifespan); the endpoint is a plain route (`mount_mcp`), so it is not in the OpenAPI schema.
- Auth: `ApiKeyMiddleware` checks the key of every request to `/mcp` as for any route (401 before the body is read,
  429 over the key's rate limit); the tools take the checked key from the request and apply its collection scope.
  A refused or failed call (another collection, bad input, a full model queue) is a tool error result whose text ends
  with `<code>: <message>`, the REST error body's code and message; never a protocol error or a crash.
- `answer` waits in the model's generation queue under the caller's key, like `/query` and `/v1/chat/completions`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import FastAPI
from haystack import Document, logging
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from app.api.auth import AUTHENTICATED_KEY, KEY_REQUIRED, read_scope
from app.api.errors import error_body, stream_error
from app.composition import Services
from app.errors import AuthenticationError, InvalidInputError, NotFoundError, RagError
from app.services.api_keys import DEV_KEY, ApiKey, Role
from app.services.query import Source
from app.services.visibility import and_filters
from components.rankers.latest_version_filter import latest_versions

logger = logging.getLogger(__name__)

MCP_PATH = "/mcp"
DEFAULT_FETCH_CHARS = 20_000
MAX_FETCH_CHARS = 100_000
_DOCUMENT_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_MIN_OVERLAP = 16  # a repeated start shorter than this is taken as chance, not as the splitter's overlap
_MAX_OVERLAP = 2_000  # longer than any splitter overlap the profiles configure

INSTRUCTIONS = (
    "Retrieval over the documents of this ragstack server. `search` finds passages (file, page, score, document "
    "id); `fetch` reads a document's pages by its document id; `answer` answers a question with numbered citations "
    "[n] and the checked claims. Collections are named; without one, the server's default collection is used."
)

# -- tool results (structured content; the same JSON is the text content) -------------------------------------------


class Passage(BaseModel):
    n: int = Field(description="The passage's rank, 1 first.")
    file: str | None = Field(description="The source file's name.")
    page: int | None = Field(description="The page the passage is on (formats without pages: null).")
    score: float | None = Field(description="Retrieval score (higher is more relevant).")
    document_id: str | None = Field(description="The source document: pass it to `fetch` to read its pages.")
    chunk_id: str = Field(description="The passage's id in the store.")
    text: str


class SearchResult(BaseModel):
    collection: str
    passages: list[Passage]


class PageText(BaseModel):
    page: int | None = Field(description="The page number (null for a document without pages).")
    text: str


class FetchResult(BaseModel):
    document_id: str
    file: str | None = Field(description="The source file's name.")
    collection: str
    pages: list[PageText] = Field(description="The requested page, or every page in order, up to `max_chars`.")
    page_numbers: list[int] = Field(description="Every page number of the document (empty without pages).")
    truncated: bool = Field(description="True when the text was cut at `max_chars`.")


class Citation(BaseModel):
    n: int = Field(description="The number the answer cites as [n].")
    file: str | None
    page: int | None
    passage: str = Field(description="The passage's text.")
    document_id: str | None
    chunk_id: str
    score: float | None
    cited: bool = Field(description="True when the answer cites this passage.")


class CheckedClaim(BaseModel):
    text: str = Field(description="A sentence of the answer.")
    sources: list[int] = Field(description="The passage numbers it was checked against.")
    supported: bool = Field(description="Whether those passages support it.")
    score: float


class AnswerResult(BaseModel):
    answer: str
    refused: bool = Field(description="True when the documents do not answer the question.")
    citations: list[Citation] = Field(description="The numbered passages the answer was written from.")
    claims: list[CheckedClaim]


# -- tool arguments ---------------------------------------------------------------------------------------------------

Collection = Annotated[
    str | None,
    Field(description="The collection to use; the server's default collection when omitted."),
]
TopK = Annotated[
    int | None,
    Field(default=None, ge=1, description="Passages to retrieve (1 to the server's RAG_MAX_TOP_K; default 5)."),
]


def build_mcp_server(services: Callable[[], Services]) -> MCPServer:
    """The MCP server; `services` returns the app's services (built by the lifespan) when a tool runs."""
    server: MCPServer = MCPServer(
        "ragstack",
        title="ragstack",
        version="0.1.0",
        instructions=INSTRUCTIONS,
        log_level="WARNING",
    )
    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    @server.tool(
        name="search",
        title="Search the documents",
        description="Find the passages of a collection most relevant to a query (hybrid retrieval, no generation). "
        "Each passage has its file, page, score, document id and text.",
        annotations=read_only,
    )
    async def search(
        query: Annotated[str, Field(description="What to look for, in natural language.")],
        ctx: Context,
        collection: Collection = None,
        top_k: TopK = None,
        filters: Annotated[
            dict[str, Any] | None,
            Field(
                default=None,
                description="A Haystack metadata filter, e.g. "
                '{"field": "meta.file_name", "operator": "==", "value": "guide.pdf"}.',
            ),
        ] = None,
    ) -> SearchResult:
        async with _tool_call("search", services(), ctx) as (state, key):
            name = _collection(state, key, collection)
            visibility = await read_scope(state, key)
            ask = functools.partial(
                state.query.ask, query, collection=name, top_k=top_k, filters=filters, visibility=visibility
            )
            result = await asyncio.to_thread(ask, generate=False)
            return SearchResult(collection=name, passages=[_passage(s) for s in result.sources])

    @server.tool(
        name="fetch",
        title="Read a document",
        description="Read a document's text by its document id (from `search` or `answer`): one page, or every "
        "page in order, with the file name and page numbers.",
        annotations=read_only,
    )
    async def fetch(
        document_id: Annotated[str, Field(description="The document id a passage or citation names.")],
        ctx: Context,
        page: Annotated[
            int | None, Field(default=None, ge=1, description="One page to read; every page when omitted.")
        ] = None,
        max_chars: Annotated[
            int,
            Field(ge=1, le=MAX_FETCH_CHARS, description="At most this many characters of text are returned."),
        ] = DEFAULT_FETCH_CHARS,
    ) -> FetchResult:
        async with _tool_call("fetch", services(), ctx) as (state, key):
            visibility = await read_scope(state, key)
            chunks = await asyncio.to_thread(_document_chunks, state, key, document_id, visibility)
            return _read_pages(document_id, chunks, page=page, max_chars=max_chars)

    @server.tool(
        name="answer",
        title="Answer from the documents",
        description="Answer a question from a collection's documents, citing the numbered passages as [n]; with "
        "the citations, the answer's checked claims, and `refused` when the documents do not answer it.",
        annotations=read_only,
    )
    async def answer(
        question: Annotated[str, Field(description="The question to answer.")],
        ctx: Context,
        collection: Collection = None,
        top_k: TopK = None,
    ) -> AnswerResult:
        async with _tool_call("answer", services(), ctx) as (state, key):
            name = _collection(state, key, collection)
            visibility = await read_scope(state, key)
            result = await state.generation.run(
                key.id, state.query.ask, question, collection=name, top_k=top_k, visibility=visibility
            )
            return AnswerResult(
                answer=result.answer or "",
                refused=result.refused,
                citations=[
                    Citation(
                        n=s.n,
                        file=s.filename,
                        page=s.page,
                        passage=s.text,
                        document_id=s.document_id,
                        chunk_id=s.chunk_id,
                        score=s.score,
                        cited=s.cited,
                    )
                    for s in result.sources
                ],
                claims=[CheckedClaim(**asdict(c)) for c in result.claims],
            )

    return server


@contextlib.asynccontextmanager
async def _tool_call(tool: str, state: Services, ctx: Context) -> AsyncIterator[tuple[Services, ApiKey]]:
    """The caller's key for one tool call, its outcome logged; every failure becomes a tool error (`code: message`,
    counted in `rag_errors_total` like an error response)."""
    started = time.perf_counter()
    outcome = "ok"
    key: ApiKey | None = None
    try:
        key = _caller(state, ctx)
        yield state, key
    except Exception as error:  # the tool's outermost boundary: a tool error result, never a crash or a traceback
        failure = stream_error(error)
        outcome = failure["code"]
        if not isinstance(error, RagError):
            logger.exception("MCP tool {tool} failed: {error}", tool=tool, error=str(error))
        raise ToolError(f"{failure['code']}: {failure['message']}") from error
    finally:
        logger.info(
            "MCP tool {tool}: {outcome} in {duration_ms} ms",
            tool=tool,
            outcome=outcome,
            key=key.prefix if key is not None else None,
            duration_ms=round((time.perf_counter() - started) * 1000.0, 1),
        )


def _caller(state: Services, ctx: Context) -> ApiKey:
    """The key `ApiKeyMiddleware` checked for this HTTP request (the dev key in dev mode), which must be a reader."""
    if state.settings.dev_mode:
        return DEV_KEY
    request = ctx.request_context.request
    scope = getattr(request, "scope", None) or {}
    key = scope.get("state", {}).get(AUTHENTICATED_KEY)
    if not isinstance(key, ApiKey):  # not through the middleware: refuse rather than guess
        raise AuthenticationError(KEY_REQUIRED)
    key.require(Role.READER)
    return key


def _collection(state: Services, key: ApiKey, collection: str | None) -> str:
    name = collection or state.settings.default_collection
    key.require(Role.READER, name)
    return name


def _passage(source: Source) -> Passage:
    return Passage(
        n=source.n,
        file=source.filename,
        page=source.page,
        score=source.score,
        document_id=source.document_id,
        chunk_id=source.chunk_id,
        text=source.text,
    )


# -- fetch: a document's pages rebuilt from its chunks -----------------------------------------------------------------


def _document_chunks(
    state: Services, key: ApiKey, document_id: str, visibility: dict[str, Any] | None = None
) -> list[Document]:
    """Every chunk of the document's current version (while a store that replaces a version in two steps holds both,
    the newer one's); a document outside the key's collections, or one it may not read (`visibility`, in the store
    query), is answered exactly as an unknown one."""
    if not isinstance(document_id, str) or not _DOCUMENT_ID.fullmatch(document_id):
        raise InvalidInputError("document_id must be 1-128 letters, digits, '_' or '-'")
    scope = {"field": "meta.document_id", "operator": "==", "value": document_id}
    chunks: list[Document] = latest_versions(state.documents.store.filter_documents(and_filters(scope, visibility)))
    if not chunks or not key.allows(str(chunks[0].meta.get("collection"))):
        raise NotFoundError(f"document {document_id!r} does not exist")
    return chunks


def _read_pages(document_id: str, chunks: list[Document], *, page: int | None, max_chars: int) -> FetchResult:
    ordered = sorted(chunks, key=_chunk_order)
    by_page: dict[int | None, list[str]] = {}
    for chunk in ordered:
        by_page.setdefault(_page_of(chunk), []).append(chunk.content or "")
    numbers = sorted(p for p in by_page if p is not None)
    if page is not None:
        if page not in by_page:
            where = f"its pages are {numbers[0]} to {numbers[-1]}" if numbers else "it has no pages (omit `page`)"
            raise NotFoundError(f"document {document_id!r} has no page {page}: {where}")
        wanted: list[int | None] = [page]
    else:
        wanted = [p for p in by_page if p is None] + list(numbers)
    pages: list[PageText] = []
    budget = max_chars
    truncated = False
    for number in wanted:
        text = merge_chunks(by_page[number])
        if len(text) > budget:
            text, truncated = text[:budget], True
        pages.append(PageText(page=number, text=text))
        budget -= len(text)
        if truncated:
            break
    meta = ordered[0].meta
    return FetchResult(
        document_id=document_id,
        file=meta.get("file_name"),
        collection=str(meta.get("collection")),
        pages=pages,
        page_numbers=numbers,
        truncated=truncated,
    )


def _page_of(chunk: Document) -> int | None:
    page = chunk.meta.get("page")
    return page if isinstance(page, int) and not isinstance(page, bool) else None


def _chunk_order(chunk: Document) -> tuple[int, int, str]:
    index = chunk.meta.get("chunk_index")
    return (_page_of(chunk) or 0, index if isinstance(index, int) else 0, chunk.id)


def merge_chunks(texts: list[str]) -> str:
    """Consecutive chunks of one page as one text: the start a chunk repeats from the end of the previous one (the
    splitter's overlap) is kept once; chunks that do not overlap are joined by a line break."""
    merged = ""
    for text in texts:
        if not merged:
            merged = text
            continue
        overlap = _overlap(merged, text)
        merged += text[overlap:] if overlap else "\n" + text
    return merged


def _overlap(before: str, after: str) -> int:
    """The length of the longest end of `before` that `after` starts with (at least `_MIN_OVERLAP`), else 0."""
    if len(after) < _MIN_OVERLAP:
        return 0
    tail = before[-_MAX_OVERLAP:]
    probe = after[:_MIN_OVERLAP]
    start = tail.find(probe)
    while start != -1:
        if after.startswith(tail[start:]):
            return len(tail) - start
        start = tail.find(probe, start + 1)
    return 0


# -- the endpoint and its lifespan ------------------------------------------------------------------------------------


class _McpRoute(Route):
    """The `/mcp` route: a plain Starlette route (not in the OpenAPI schema) that names itself in the scope, so the
    request's log line and HTTP metrics carry `route="/mcp"` like an API route's template."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match != Match.NONE:
            child = {**child, "route": self}
        return match, child


class _McpEndpoint:
    """The ASGI app behind `/mcp`: the running session manager of the app's lifespan (503 before it runs)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        manager: StreamableHTTPSessionManager | None = getattr(self.app.state, "mcp", None)
        if manager is None:
            response = JSONResponse(error_body("not_ready", "the service is starting"), status_code=503)
            await response(scope, receive, send)
            return
        await manager.handle_request(scope, receive, send)


def mount_mcp(app: FastAPI) -> None:
    """Serve MCP at `/mcp` (every method: the SDK answers those it does not serve with 405)."""
    app.router.routes.append(_McpRoute(MCP_PATH, endpoint=_McpEndpoint(app), include_in_schema=False))


@contextlib.asynccontextmanager
async def mcp_sessions(app: FastAPI) -> AsyncIterator[None]:
    """The MCP server's session manager for one run of the app (a manager runs once: each lifespan builds its own)."""
    server = build_mcp_server(lambda: app.state.rag)
    server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        stateless_http=True,
        json_response=True,
        # Callers present an API key, never ambient credentials: Host/Origin checks would only break proxies.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    manager = server.session_manager
    async with manager.run():
        app.state.mcp = manager
        try:
            yield
        finally:
            app.state.mcp = None
