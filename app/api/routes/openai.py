"""OpenAI-compatible chat over the query pipeline, so OpenAI SDK clients and chat UIs can use the RAG.

The last user message is the question; the user and assistant messages before it are the conversation's history,
with which the query pipeline's condenser rewrites a follow-up into a standalone question before retrieval (system,
developer and tool messages are not part of it; of a long conversation, the most recent 100 messages and 100,000
characters at most). Extension fields in the request body: `collection`, `top_k`,
`filters` (same meaning as `POST /query`). Extension fields in the response: `sources` (the numbered passages, as in
`POST /query`), `claims` (the checked sentences, as in `POST /query`), `refused` and `standalone_question` (the
question retrieval used); when streaming they arrive on the final chunk (the one with `finish_reason`). The streamed
`content` deltas add up to the answer.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from haystack import logging
from haystack.dataclasses import ChatMessage
from pydantic import BaseModel, Field

from app.api.auth import Reader, read_scope
from app.api.deps import State
from app.api.errors import stream_error
from app.api.schemas import AUTH_ERRORS, ErrorResponse
from app.errors import InvalidInputError
from app.services.api_keys import Role
from app.services.query import StreamEvent, recent_history, stream_answer

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["openai"], responses=AUTH_ERRORS)
MODEL_ID = "rag"


class ChatMessageIn(BaseModel):
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[dict[str, Any]] | None = None


class ChatCompletionRequest(BaseModel):
    model: str = Field(default=MODEL_ID, examples=[MODEL_ID])
    messages: list[ChatMessageIn] = Field(min_length=1)
    stream: bool = False
    collection: str | None = Field(default=None, description="Extension: the collection to answer from.")
    top_k: int | None = Field(
        default=None, ge=1, description="Extension: passages to retrieve, 1 to RAG_MAX_TOP_K (400 beyond)."
    )
    filters: dict[str, Any] | None = Field(default=None, description="Extension: Haystack metadata filter.")
    model_config = {"extra": "allow"}


def _text(message: ChatMessageIn) -> str:
    if isinstance(message.content, str):
        return message.content
    if isinstance(message.content, list):
        return " ".join(str(p.get("text", "")) for p in message.content if p.get("type") == "text")
    return ""


def _conversation(messages: list[ChatMessageIn]) -> tuple[str, list[ChatMessage]]:
    """The question (the last user message) and the history before it: its user and assistant messages with text, the
    most recent ones within the history bounds (a chat client sends the whole conversation every time)."""
    last = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].role == "user"), None)
    if last is None:
        raise InvalidInputError("messages must contain a user message")
    history = [
        ChatMessage.from_user(text) if m.role == "user" else ChatMessage.from_assistant(text)
        for m in messages[:last]
        if m.role in ("user", "assistant") and (text := _text(m)).strip()
    ]
    return _text(messages[last]), recent_history(history)


def _completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


@router.get("/models", summary="The models this endpoint serves (one: the RAG pipeline)")
async def models(_: Reader) -> dict[str, Any]:
    return {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "ragstack"}]}


@router.post(
    "/chat/completions",
    responses={
        400: {"model": ErrorResponse},
        404: {"model": ErrorResponse, "description": "Not a collection of the key's tenant (docs/security.md#tenants)"},
        200: {"content": {"text/event-stream": {}}},
    },
    summary="OpenAI-compatible chat completion answered by the query pipeline",
)
async def chat_completions(body: ChatCompletionRequest, state: State, key: Reader) -> Any:
    collection = body.collection or state.settings.default_collection
    key.require(Role.READER, collection)
    question, history = _conversation(body.messages)
    visibility = await read_scope(state, key)
    if body.stream:
        events = stream_answer(
            state.query,
            question,
            collection=collection,
            top_k=body.top_k,
            filters=body.filters,
            generation=state.generation,
            key_id=key.id,
            history=history,
            visibility=visibility,
        )
        first: StreamEvent | InvalidInputError
        try:  # a full model queue is a 429/503 here, before the stream starts
            first = await anext(events)
        except InvalidInputError as error:  # reported inside the stream, as before
            first = error
        return StreamingResponse(
            _stream(body, first, events),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )
    result = await state.generation.run(
        key.id,
        state.query.ask,
        question,
        collection=collection,
        top_k=body.top_k,
        filters=body.filters,
        history=history,
        visibility=visibility,
    )
    return {
        "id": _completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": result.answer}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        "sources": [asdict(s) for s in result.sources],
        "claims": [asdict(c) for c in result.claims],
        "refused": result.refused,
        "standalone_question": result.standalone_question,
    }


async def _stream(
    body: ChatCompletionRequest, first: StreamEvent | InvalidInputError, events: AsyncIterator[StreamEvent]
) -> AsyncIterator[str]:
    completion_id, created = _completion_id(), int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        payload = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": body.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    sources: list[dict[str, Any]] = []
    if isinstance(first, InvalidInputError):
        yield f"data: {json.dumps({'error': {'code': first.code, 'message': first.message}})}\n\n"
        yield "data: [DONE]\n\n"
        return
    try:
        async for event in _chained(first, events):
            if event.kind == "sources":
                sources = [asdict(s) for s in event.data]
            elif event.kind == "token":
                yield chunk({"content": event.data})
            elif event.kind == "done":
                cited = set(event.data["cited"])
                for source in sources:
                    source["cited"] = source["n"] in cited
                yield chunk(
                    {},
                    "stop",
                    sources=[] if event.data["refused"] else sources,
                    claims=event.data["claims"],
                    refused=event.data["refused"],
                    standalone_question=event.data["standalone_question"],
                )
            elif event.kind == "error":
                yield f"data: {json.dumps({'error': stream_error(event.data)})}\n\n"
    except InvalidInputError as error:
        yield f"data: {json.dumps({'error': {'code': error.code, 'message': error.message}})}\n\n"
    yield "data: [DONE]\n\n"


async def _chained(first: StreamEvent, rest: AsyncIterator[StreamEvent]) -> AsyncIterator[StreamEvent]:
    yield first
    async for event in rest:
        yield event
