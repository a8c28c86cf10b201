"""OpenAI's Responses API over the query pipeline: `POST /v1/responses` with the `file_search` tool, streaming or not,
stored responses (`GET`/`DELETE /v1/responses/{id}`, its input items) and follow-ups by `previous_response_id`.

A vector store is a collection (its id is the collection name); one vector store per request (the query pipeline
answers from one collection). The answer cites its passages as `[n]`; each cited passage is a `file_citation`
annotation whose `index` is the position in `text` just after its first `[n]` marker, with our extension fields `page`
and `passage` (the `n`). Extension fields of the response: `refused` and `claims` (as in `POST /query`).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from haystack import logging
from haystack.dataclasses import ChatMessage
from pydantic import BaseModel, Field

from app.api.auth import Reader, read_scope
from app.api.deps import RagState, State
from app.api.errors import stream_error
from app.api.schemas import AUTH_ERRORS, ErrorResponse
from app.errors import InvalidInputError, NotFoundError
from app.services.access import EVERYONE
from app.services.api_keys import ApiKey, Role
from app.services.naming import validate_collection
from app.services.openai_filters import translate_filters
from app.services.query import Source, StreamEvent, stream_answer
from app.services.responses import StoredResponse, new_response_id

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["openai"], responses=AUTH_ERRORS)
MODEL_ID = "rag"
INCLUDE_RESULTS = "file_search_call.results"
NO_TOOL = "this service answers only from documents: give tools=[{'type': 'file_search', 'vector_store_ids': [<id>]}]"


# -- request ------------------------------------------------------------------------------------------------------


class ResponseInputText(BaseModel):
    type: Literal["input_text", "output_text", "text"] = "input_text"
    text: str = Field(max_length=100_000)


class ResponseInputMessage(BaseModel):
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[ResponseInputText] = Field(max_length=100_000)


class ResponseFileSearchToolIn(BaseModel):
    type: str = Field(examples=["file_search"], max_length=100)
    vector_store_ids: list[str] | None = Field(default=None, max_length=100)
    filters: dict[str, Any] | None = None
    max_num_results: int | None = Field(default=None, ge=1, le=50)
    ranking_options: dict[str, Any] | None = None
    model_config = {"extra": "allow"}


class ResponseCreateRequest(BaseModel):
    model: str = Field(default=MODEL_ID, examples=[MODEL_ID], max_length=200)
    input: str | list[ResponseInputMessage] = Field(
        description="The question, or messages whose last one is the user's question (earlier ones: the history)."
    )
    instructions: str | None = Field(
        default=None,
        max_length=100_000,
        description="Extra rules for the answer, added to the query pipeline's system message (its prompt_builder "
        "template's `instructions` variable; a pipeline without one answers 400). Not carried over by "
        "`previous_response_id`, as in OpenAI's API.",
    )
    tools: list[ResponseFileSearchToolIn] = Field(
        default_factory=list, max_length=16, description="Exactly one `file_search` tool with one vector store."
    )
    include: list[str] | None = Field(default=None, max_length=16)
    stream: bool = False
    store: bool = True
    previous_response_id: str | None = Field(default=None, max_length=200)
    metadata: dict[str, str] | None = None
    model_config = {"extra": "allow"}


# -- response -----------------------------------------------------------------------------------------------------


class ResponseFileSearchResult(BaseModel):
    file_id: str
    filename: str | None
    score: float | None
    text: str
    attributes: dict[str, str | float | bool] = Field(default_factory=dict)
    page: int | None = Field(default=None, description="Extension: the page of the passage (PDF), if known.")
    passage: int = Field(description="Extension: the passage's number `n`, cited as `[n]`.")


class ResponseFileSearchCall(BaseModel):
    id: str
    type: Literal["file_search_call"] = "file_search_call"
    status: Literal["in_progress", "searching", "completed", "incomplete", "failed"]
    queries: list[str]
    results: list[ResponseFileSearchResult] | None = None


class ResponseFileCitation(BaseModel):
    type: Literal["file_citation"] = "file_citation"
    file_id: str
    filename: str
    index: int = Field(description="The position in `text` just after the passage's first `[n]` marker.")
    page: int | None = Field(default=None, description="Extension: the cited passage's page, if known.")
    passage: int = Field(description="Extension: the cited passage's number `n`.")


class ResponseOutputText(BaseModel):
    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[ResponseFileCitation]
    logprobs: list[Any] = Field(default_factory=list)


class ResponseMessage(BaseModel):
    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    status: Literal["in_progress", "completed", "incomplete"]
    content: list[ResponseOutputText]


class ResponseUsage(BaseModel):
    input_tokens: int = 0
    input_tokens_details: dict[str, int] = Field(default_factory=lambda: {"cached_tokens": 0, "cache_write_tokens": 0})
    output_tokens: int = 0
    output_tokens_details: dict[str, int] = Field(default_factory=lambda: {"reasoning_tokens": 0})
    total_tokens: int = 0


class ResponseErrorInfo(BaseModel):
    code: str
    message: str


class ResponseObject(BaseModel):
    id: str
    object: Literal["response"] = "response"
    created_at: float
    status: Literal["completed", "failed", "in_progress", "incomplete"]
    model: str
    output: list[ResponseFileSearchCall | ResponseMessage]
    parallel_tool_calls: bool = False
    tool_choice: str = "auto"
    tools: list[dict[str, Any]]
    instructions: str | None = None
    previous_response_id: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    store: bool = True
    text: dict[str, Any] = Field(default_factory=lambda: {"format": {"type": "text"}})
    truncation: str = "disabled"
    usage: ResponseUsage | None = None
    error: ResponseErrorInfo | None = None
    incomplete_details: dict[str, Any] | None = None
    refused: bool | None = Field(default=None, description="Extension: the pipeline declined to answer.")
    claims: list[dict[str, Any]] = Field(default_factory=list, description="Extension: the checked claims.")
    standalone_question: str | None = Field(
        default=None,
        description="Extension: the question as searched; a follow-up rewritten with the conversation's history.",
    )


class ResponseDeleted(BaseModel):
    id: str
    object: Literal["response"] = "response"
    deleted: bool = True


class ResponseInputItem(BaseModel):
    id: str
    type: Literal["message"] = "message"
    role: Literal["user", "assistant"]
    status: Literal["completed"] = "completed"
    content: list[dict[str, Any]]


class ResponseInputItemList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ResponseInputItem]
    first_id: str | None
    last_id: str | None
    has_more: bool = False


# -- the request's meaning ----------------------------------------------------------------------------------------


def _filters(tool: ResponseFileSearchToolIn) -> dict[str, Any] | None:
    """The tool's OpenAI attribute filter as a Haystack filter (400 with the reason when it is malformed)."""
    return translate_filters(tool.filters)


def _file_search(body: ResponseCreateRequest) -> ResponseFileSearchToolIn:
    """The request's one file_search tool (400 with the reason otherwise)."""
    if not body.tools:
        raise InvalidInputError(NO_TOOL)
    others = sorted({tool.type for tool in body.tools if tool.type != "file_search"})
    if others:
        raise InvalidInputError(f"unsupported tools {others}: only 'file_search' is served here")
    if len(body.tools) > 1:
        raise InvalidInputError("give one file_search tool")
    tool = body.tools[0]
    if not tool.vector_store_ids:
        raise InvalidInputError("file_search needs vector_store_ids with one vector store id")
    if len(tool.vector_store_ids) > 1:
        raise InvalidInputError("file_search searches one vector store per request: give one vector_store_ids entry")
    return tool


def _text(content: str | list[ResponseInputText]) -> str:
    return content if isinstance(content, str) else "".join(part.text for part in content)


def _input_items(body: ResponseCreateRequest) -> list[dict[str, Any]]:
    """The input as stored message items; 400 for system/developer messages or no final user message."""
    if isinstance(body.input, str):
        return [{"role": "user", "content": [{"type": "input_text", "text": body.input}]}]
    items = []
    for message in body.input:
        if message.role in ("system", "developer"):
            raise InvalidInputError(
                f"'{message.role}' messages are not supported: the prompt is the query pipeline's own"
            )
        text = _text(message.content)
        part = (
            {"type": "input_text", "text": text}
            if message.role == "user"
            else {"type": "output_text", "text": text, "annotations": []}
        )
        items.append({"role": message.role, "content": [part]})
    if not items or items[-1]["role"] != "user":
        raise InvalidInputError("input must end with the user's question (a 'user' message)")
    return items


def _history(items: list[dict[str, Any]]) -> list[ChatMessage]:
    """The input messages before the question, as chat messages."""
    messages = []
    for item in items[:-1]:
        text = item["content"][0]["text"]
        messages.append(ChatMessage.from_user(text) if item["role"] == "user" else ChatMessage.from_assistant(text))
    return messages


def _visible(state: RagState, key: ApiKey) -> Any:
    """Whether `key` sees a stored response (blocking: the creator's key is read): within its collections, and
    `_readable`."""
    return lambda stored: all(key.allows(c) for c in stored.collections) and _readable(state, key, stored)


def _readable(state: RagState, key: ApiKey, stored: StoredResponse) -> bool:
    """A response holds passages of the documents its creator could read: another key sees it only when it reads
    every one of them too (it holds `*`, or every principal of the creator, who did not hold `*`)."""
    if stored.key_id == key.id or EVERYONE in key.principals:
        return True
    try:
        creator = state.keys.get(stored.key_id)
    except NotFoundError:
        return False
    return EVERYONE not in creator.principals and creator.principals <= key.principals


async def _scoped(state: RagState, key: ApiKey, response_id: str) -> StoredResponse:
    """A stored response within the key's scope (404 unknown, or holding passages the key may not read; 403 outside
    the key's collections)."""
    stored = await run_in_threadpool(state.responses.get, response_id)
    if stored is None or not all(key.within_tenant(c) for c in stored.collections):  # another tenant's: unknown
        raise NotFoundError(f"response {response_id!r} does not exist")
    for collection in stored.collections:
        key.require(Role.READER, collection)
    if not await run_in_threadpool(_readable, state, key, stored):
        raise NotFoundError(f"response {response_id!r} does not exist")
    return stored


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _file_id(source: Source) -> str:
    """The OpenAI file id of a passage: its file's id when it came from the Files API, else our document id."""
    return str(source.file_id or source.document_id or source.chunk_id)


def _results(sources: Sequence[Source]) -> list[ResponseFileSearchResult]:
    return [
        ResponseFileSearchResult(
            file_id=_file_id(s), filename=s.filename, score=s.score, text=s.text, page=s.page, passage=s.n
        )
        for s in sources
    ]


def citations(text: str, sources: Sequence[Source]) -> list[ResponseFileCitation]:
    """One `file_citation` per cited source, `index` just after its first `[n]` in `text` (the end when absent),
    in text order."""
    found = []
    for source in sources:
        if not source.cited:
            continue
        match = re.search(rf"\[{source.n}\]", text)
        found.append(
            ResponseFileCitation(
                file_id=_file_id(source),
                filename=source.filename or "",
                index=match.end() if match else len(text),
                page=source.page,
                passage=source.n,
            )
        )
    return sorted(found, key=lambda a: (a.index, a.passage))


class _Turn:
    """What one request asks: the collection, the question, its history, and the response's fixed fields."""

    def __init__(self, body: ResponseCreateRequest, key: ApiKey, state: RagState) -> None:
        self.body = body
        self.key = key
        self.tool = _file_search(body)
        self.collection = (self.tool.vector_store_ids or [""])[0]
        self.filters = _filters(self.tool)
        self.items = _input_items(body)
        self.question = self.items[-1]["content"][0]["text"]
        self.include_results = INCLUDE_RESULTS in (body.include or [])
        self.response_id = new_response_id()
        self.search_id = _new_id("fs")
        self.message_id = _new_id("msg")
        self.created_at = float(int(time.time()))
        self.history: list[ChatMessage] = []
        self.state = state
        self.visibility: dict[str, Any] | None = None  # the caller's read filter (`check`)

    async def check(self) -> None:
        """Scope, existence and the history of `previous_response_id` (403/404/400 before anything runs)."""
        validate_collection(self.collection)
        self.key.require(Role.READER, self.collection, noun="vector store")
        self.visibility = await read_scope(self.state, self.key)
        await run_in_threadpool(self.state.vector_stores.check_active, self.collection)  # 404 unknown, 400 expired
        await run_in_threadpool(self.state.vector_stores.touch, self.collection)  # its expiry counts from its last use
        if self.body.previous_response_id is not None:
            previous = await run_in_threadpool(self.state.responses.get, self.body.previous_response_id)
            if previous is None or not await run_in_threadpool(_visible(self.state, self.key), previous):
                raise NotFoundError(f"previous response {self.body.previous_response_id!r} does not exist")
            self.history = await run_in_threadpool(
                self.state.responses.history, previous.id, visible=_visible(self.state, self.key)
            )
        self.history += _history(self.items)

    def tools(self) -> list[dict[str, Any]]:
        return [
            {
                "type": "file_search",
                "vector_store_ids": [self.collection],
                "filters": self.tool.filters,
                "max_num_results": self.tool.max_num_results or self.state.query.default_top_k,
                "ranking_options": {"ranker": "auto", "score_threshold": 0.0},
            }
        ]

    def search_call(self, status: str, sources: Sequence[Source] | None) -> ResponseFileSearchCall:
        results = _results(sources) if self.include_results and sources is not None else None
        return ResponseFileSearchCall(id=self.search_id, status=status, queries=[self.question], results=results)  # type: ignore[arg-type]

    def message(self, status: str, text: str, sources: Sequence[Source]) -> ResponseMessage:
        part = ResponseOutputText(text=text, annotations=citations(text, sources))
        return ResponseMessage(id=self.message_id, status=status, content=[part])  # type: ignore[arg-type]

    def response(
        self,
        status: str,
        output: list[ResponseFileSearchCall | ResponseMessage],
        *,
        refused: bool | None = None,
        claims: list[dict[str, Any]] | None = None,
        error: ResponseErrorInfo | None = None,
        standalone_question: str | None = None,
    ) -> ResponseObject:
        return ResponseObject(
            id=self.response_id,
            created_at=self.created_at,
            status=status,  # type: ignore[arg-type]
            model=self.body.model,
            output=output,
            tools=self.tools(),
            instructions=self.body.instructions,
            previous_response_id=self.body.previous_response_id,
            metadata=self.body.metadata or {},
            store=self.body.store,
            usage=ResponseUsage() if status == "completed" else None,
            error=error,
            refused=refused,
            claims=claims or [],
            standalone_question=standalone_question,
        )

    async def save(self, response: ResponseObject, text: str) -> None:
        if not self.body.store:
            return
        await run_in_threadpool(
            lambda: self.state.responses.save(
                id=self.response_id,
                key_id=self.key.id,
                collections=[self.collection],
                previous_response_id=self.body.previous_response_id,
                input=self.items,
                output_text=text,
                body=response.model_dump(mode="json"),
            )
        )


# -- routes -------------------------------------------------------------------------------------------------------


@router.post(
    "/responses",
    response_model=ResponseObject,
    responses={
        400: {"model": ErrorResponse},
        404: {"model": ErrorResponse},
        200: {"content": {"text/event-stream": {}}},
    },
    summary="OpenAI Responses: answer from a vector store (the file_search tool), streaming or not",
)
async def create_response(body: ResponseCreateRequest, state: State, key: Reader) -> Any:
    turn = _Turn(body, key, state)
    await turn.check()
    if body.stream:
        events = stream_answer(
            state.query,
            turn.question,
            collection=turn.collection,
            top_k=turn.tool.max_num_results,
            filters=turn.filters,
            generation=state.generation,
            key_id=key.id,
            history=turn.history,
            instructions=body.instructions,
            visibility=turn.visibility,
        )
        first = await anext(events)  # a bad request or a full model queue is a 4xx/5xx here, before the stream
        return StreamingResponse(
            _stream(turn, first, events), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )
    result = await state.generation.run(
        key.id,
        state.query.ask,
        turn.question,
        collection=turn.collection,
        top_k=turn.tool.max_num_results,
        filters=turn.filters,
        history=turn.history,
        instructions=body.instructions,
        visibility=turn.visibility,
    )
    text = result.answer or ""
    response = turn.response(
        "completed",
        [turn.search_call("completed", result.sources), turn.message("completed", text, result.sources)],
        refused=result.refused,
        claims=[asdict(c) for c in result.claims],
        standalone_question=result.standalone_question,
    )
    await turn.save(response, text)
    return response


@router.get(
    "/responses/{response_id}",
    response_model=ResponseObject,
    responses={404: {"model": ErrorResponse}},
    summary="A stored response",
)
async def get_response(response_id: str, state: State, key: Reader) -> Any:
    return (await _scoped(state, key, response_id)).body


@router.delete(
    "/responses/{response_id}",
    response_model=ResponseDeleted,
    responses={404: {"model": ErrorResponse}},
    summary="Delete a stored response",
)
async def delete_response(response_id: str, state: State, key: Reader) -> ResponseDeleted:
    stored = await _scoped(state, key, response_id)
    await run_in_threadpool(state.responses.delete, stored.id)
    return ResponseDeleted(id=stored.id)


@router.get(
    "/responses/{response_id}/input_items",
    response_model=ResponseInputItemList,
    responses={404: {"model": ErrorResponse}},
    summary="The input messages of a stored response (newest first, as OpenAI lists them)",
)
async def response_input_items(
    response_id: str, state: State, key: Reader, order: Literal["asc", "desc"] = "desc"
) -> ResponseInputItemList:
    stored = await _scoped(state, key, response_id)
    items = [
        ResponseInputItem(id=f"msg_{stored.id.removeprefix('resp_')}_{i}", role=item["role"], content=item["content"])
        for i, item in enumerate(stored.input)
    ]
    if order == "desc":
        items.reverse()
    return ResponseInputItemList(
        data=items, first_id=items[0].id if items else None, last_id=items[-1].id if items else None
    )


# -- streaming ----------------------------------------------------------------------------------------------------


async def _stream(turn: _Turn, first: StreamEvent, events: AsyncIterator[StreamEvent]) -> AsyncIterator[str]:
    """The Responses event sequence; a failure after the start is `response.failed`, never a hang."""
    sequence = 0

    def event(kind: str, **data: Any) -> str:
        nonlocal sequence
        payload = {"type": kind, "sequence_number": sequence, **data}
        sequence += 1
        return f"event: {kind}\ndata: {json.dumps(payload, ensure_ascii=False)}\n\n"

    def dump(model: BaseModel) -> dict[str, Any]:
        return model.model_dump(mode="json")

    search: dict[str, Any] = {"item_id": turn.search_id, "output_index": 0}
    text_at: dict[str, Any] = {"item_id": turn.message_id, "output_index": 1, "content_index": 0}
    yield event("response.created", response=dump(turn.response("in_progress", [])))
    yield event("response.in_progress", response=dump(turn.response("in_progress", [])))
    yield event("response.output_item.added", output_index=0, item=dump(turn.search_call("in_progress", None)))
    yield event("response.file_search_call.in_progress", **search)
    yield event("response.file_search_call.searching", **search)
    sources: list[Source] = []
    output: list[ResponseFileSearchCall | ResponseMessage] = []
    tokens: list[str] = []
    try:
        async for step in _chained(first, events):
            if not output and step.kind in ("sources", "token", "done"):  # the search is over: the message starts
                sources = list(step.data) if step.kind == "sources" else []
                output = [turn.search_call("completed", sources)]
                yield event("response.file_search_call.completed", **search)
                yield event("response.output_item.done", output_index=0, item=dump(output[0]))
                yield event(
                    "response.output_item.added", output_index=1, item=dump(turn.message("in_progress", "", []))
                )
                empty = ResponseOutputText(text="", annotations=[])
                yield event("response.content_part.added", part=dump(empty), **text_at)
            if step.kind == "token":
                tokens.append(step.data)
                yield event("response.output_text.delta", delta=step.data, logprobs=[], **text_at)
            elif step.kind == "done":
                text = "".join(tokens)
                cited = set(step.data["cited"])
                for source in sources:
                    source.cited = source.n in cited and not step.data["refused"]
                message = turn.message("completed", text, sources)
                for index, annotation in enumerate(message.content[0].annotations):
                    yield event(
                        "response.output_text.annotation.added",
                        annotation_index=index,
                        annotation=dump(annotation),
                        **text_at,
                    )
                yield event("response.output_text.done", text=text, logprobs=[], **text_at)
                yield event("response.content_part.done", part=dump(message.content[0]), **text_at)
                yield event("response.output_item.done", output_index=1, item=dump(message))
                response = turn.response(
                    "completed",
                    [*output, message],
                    refused=step.data["refused"],
                    claims=step.data["claims"],
                    standalone_question=step.data.get("standalone_question"),
                )
                await turn.save(response, text)
                yield event("response.completed", response=dump(response))
                return
            elif step.kind == "error":
                failure = ResponseErrorInfo(**stream_error(step.data))
                yield event("response.failed", response=dump(turn.response("failed", output, error=failure)))
                return
    except InvalidInputError as error:
        failure = ResponseErrorInfo(code=error.code, message=error.message)
        yield event("response.failed", response=dump(turn.response("failed", output, error=failure)))
        return
    failure = ResponseErrorInfo(code="incomplete", message="the answer stream ended early")
    yield event("response.failed", response=dump(turn.response("failed", output, error=failure)))


async def _chained(first: StreamEvent, rest: AsyncIterator[StreamEvent]) -> AsyncIterator[StreamEvent]:
    yield first
    async for step in rest:
        yield step
