"""Questions: a JSON answer, or the same answer streamed as Server-Sent Events."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from haystack import logging
from haystack.dataclasses import ChatMessage

from app.api.auth import Reader, read_scope
from app.api.deps import State
from app.api.errors import stream_error
from app.api.schemas import (
    AUTH_ERRORS,
    ClaimOut,
    ErrorResponse,
    HistoryMessage,
    QueryRequest,
    QueryResponse,
    SourceOut,
    Timings,
)
from app.services.api_keys import Role
from app.services.query import StreamEvent, stream_answer

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/query", tags=["query"], responses=AUTH_ERRORS)
_NOT_FOUND = {"model": ErrorResponse, "description": "Not a collection of the key's tenant (docs/security.md#tenants)"}


def history_messages(history: list[HistoryMessage] | None) -> list[ChatMessage] | None:
    """The request's history as Haystack chat messages (the query service checks the bounds)."""
    if not history:
        return None
    return [
        ChatMessage.from_user(m.content) if m.role == "user" else ChatMessage.from_assistant(m.content) for m in history
    ]


@router.post(
    "",
    response_model=QueryResponse,
    responses={400: {"model": ErrorResponse}, 404: _NOT_FOUND},
    summary="Answer a question from a collection, with numbered sources",
)
async def query(body: QueryRequest, state: State, key: Reader) -> QueryResponse:
    collection = body.collection or state.settings.default_collection
    key.require(Role.READER, collection)
    ask = functools.partial(
        state.query.ask,
        body.question,
        collection=collection,
        top_k=body.top_k,
        filters=body.filters,
        generate=body.generate,
        history=history_messages(body.history),
        visibility=await read_scope(state, key),
    )
    # an answer waits in the model's queue (429/503 when full); a search-only query never does
    result = await (state.generation.run(key.id, ask) if body.generate else asyncio.to_thread(ask))
    return QueryResponse(
        answer=result.answer,
        refused=result.refused,
        sources=[SourceOut(**asdict(s)) for s in result.sources],
        claims=[ClaimOut(**asdict(c)) for c in result.claims],
        timings_ms=Timings(**result.timings_ms),
        standalone_question=result.standalone_question,
    )


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _event_data(event: StreamEvent) -> Any:
    if event.kind == "sources":
        return {"sources": [asdict(s) for s in event.data]}
    if event.kind == "token":
        return {"text": event.data}
    if event.kind == "error":
        return stream_error(event.data)
    return event.data


@router.post(
    "/stream",
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "sources, token..., done | error"},
        404: _NOT_FOUND,
    },
    summary="Answer a question as Server-Sent Events",
    description="Events: one `sources` (the numbered passages), then `token` events as the LLM produces them, then "
    "`done` with the answer, the cited numbers, the checked claims and timings; `error` if the pipeline fails "
    "mid-way. The `token` texts add up to `done`'s answer (an inferred citation is a last `token`; when the claim "
    "checker may drop sentences or refuse, the checked answer comes as one `token` after generation).",
)
async def query_stream(body: QueryRequest, state: State, key: Reader) -> StreamingResponse:
    collection = body.collection or state.settings.default_collection
    key.require(Role.READER, collection)
    events = stream_answer(
        state.query,
        body.question,
        collection=collection,
        top_k=body.top_k,
        filters=body.filters,
        generation=state.generation,
        key_id=key.id,
        history=history_messages(body.history),
        visibility=await read_scope(state, key),
    )
    first = await anext(events)  # validation errors and a full queue surface here as a 4xx/503, before the stream

    async def frames() -> AsyncIterator[str]:
        yield _sse(first.kind, _event_data(first))
        try:
            async for event in events:
                yield _sse(event.kind, _event_data(event))
        except Exception as error:  # the stream's outermost boundary: report, never hang
            logger.exception("Stream failed: {error}", error=str(error))
            yield _sse("error", {"code": "internal_error", "message": "internal server error"})

    return StreamingResponse(frames(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
