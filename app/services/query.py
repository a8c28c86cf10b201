"""Answer a question through the query pipeline: collection-scoped hybrid retrieval, gate, LLM, citations."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from haystack import Document, Pipeline, logging
from haystack.core.errors import PipelineRuntimeError
from haystack.dataclasses import ChatMessage, ChatRole, GeneratedAnswer, StreamingChunk

from app import metrics, timing
from app.errors import InvalidInputError, RagError
from app.pipeline_loader import PipelineSet
from app.services.citation_stream import StreamedCitations
from app.services.generation_queue import GenerationQueue
from app.services.naming import validate_collection
from app.services.query_filters import scoped_filters, validate_filters
from app.upstream import filter_mismatch, upstream_error
from components.embedders.embedding_reuser import EMBEDDING_MODEL
from components.validators.claim_checker import Claim, ClaimChecker

logger = logging.getLogger(__name__)

PROMPT_BUILDER = "prompt_builder"  # the query pipeline's prompt, by role: where `instructions` go
MAX_HISTORY_MESSAGES = 100  # earlier turns a request may send (the condenser shows the model the last few only)
MAX_HISTORY_CHARS = 100_000  # characters of history a request may send, in all


@dataclass
class Source:
    """A passage given to the LLM; `n` is the number the answer cites as `[n]`."""

    n: int
    document_id: str | None
    filename: str | None
    page: int | None
    chunk_id: str
    score: float | None
    text: str
    cited: bool = False
    file_id: str | None = None
    """The OpenAI file id when the passage came from a file attached to a vector store (`/v1/vector_stores`)."""


@dataclass
class QueryResult:
    """The answer (None for a search-only query), its sources and timings in milliseconds."""

    answer: str | None
    sources: list[Source]
    timings_ms: dict[str, float]
    refused: bool = False
    components_ms: dict[str, float] = field(default_factory=dict)
    claims: list[Claim] = field(default_factory=list)
    """The answer's sentences checked against the passages they cite (a `ClaimChecker` in the pipeline); empty for
    a refusal, a search-only query or a pipeline without a checker."""
    standalone_question: str | None = None
    """The question retrieval and the answer used: the condenser's rewrite of a follow-up with its history, else the
    question as asked (None when the pipeline declares no `standalone_question` output)."""


def recent_history(history: Sequence[ChatMessage]) -> list[ChatMessage]:
    """The most recent messages of a conversation within the history bounds (`MAX_HISTORY_MESSAGES`,
    `MAX_HISTORY_CHARS`): for clients that always send the whole conversation (OpenAI chat), whose older turns the
    condenser would not show the model anyway."""
    kept: list[ChatMessage] = []
    total = 0
    for message in reversed(history[-MAX_HISTORY_MESSAGES:]):
        total += len(message.text or "")
        if total > MAX_HISTORY_CHARS:
            break
        kept.append(message)
    return kept[::-1]


def validate_history(history: Sequence[ChatMessage] | None) -> list[ChatMessage] | None:
    """Check conversation history (the earlier turns, oldest first): user and assistant messages with text only, at
    most `MAX_HISTORY_MESSAGES` of them and `MAX_HISTORY_CHARS` characters in all. None or empty: None."""
    if history is None:
        return None
    if isinstance(history, str | bytes) or not isinstance(history, Sequence):
        raise InvalidInputError("history must be a list of user/assistant messages")
    if len(history) > MAX_HISTORY_MESSAGES:
        raise InvalidInputError(f"history may hold at most {MAX_HISTORY_MESSAGES} messages")
    total = 0
    for i, message in enumerate(history):
        if not isinstance(message, ChatMessage) or message.role not in (ChatRole.USER, ChatRole.ASSISTANT):
            raise InvalidInputError(f"history[{i}] must be a user or assistant message")
        if not isinstance(message.text, str) or not message.text.strip():
            raise InvalidInputError(f"history[{i}] must have non-empty text content")
        total += len(message.text)
    if total > MAX_HISTORY_CHARS:
        raise InvalidInputError(f"history is longer than {MAX_HISTORY_CHARS} characters")
    return list(history) or None


def _source(n: int, doc: Document, cited: bool) -> Source:
    page = doc.meta.get("page")
    return Source(
        n=n,
        document_id=doc.meta.get("document_id"),
        filename=doc.meta.get("file_name"),
        page=page if isinstance(page, int) else None,
        chunk_id=doc.id,
        score=doc.score,
        text=doc.content or "",
        cited=cited,
        file_id=doc.meta.get("file_id"),
    )


class QueryService:
    """Runs the query pipeline of a `PipelineSet`."""

    def __init__(
        self,
        pipelines: PipelineSet,
        *,
        default_top_k: int = 5,
        max_top_k: int = 50,
        max_question_chars: int = 4000,
        log_content: bool = False,
    ) -> None:
        self.pipelines = pipelines
        self.default_top_k = default_top_k
        self.max_top_k = max_top_k
        self.max_question_chars = max_question_chars
        self.log_content = log_content
        self._embedding_model = pipelines.query_embedding_model
        self._stale_warned: set[tuple[str, str]] = set()  # (collection, model) already logged by this process
        self._stale_lock = threading.Lock()

    def _check_embedding_models(self, collection: str, documents: Sequence[Document]) -> None:
        """Count and log (once per collection and model) retrieved chunks that another embedding model embedded.

        After the embedder's `model` changes in the YAML, the chunks indexed before still hold the old model's vectors
        (chunks carry the model as meta `embedding_model`); the vector search compares them with the new model's
        question embedding, which ranks them at random. Nothing fails, so this says it: index those documents again.
        """
        expected = self._embedding_model
        if expected is None:
            return
        stale = sorted(
            {m for d in documents if isinstance(m := (d.meta or {}).get(EMBEDDING_MODEL), str) and m and m != expected}
        )
        if not stale:
            return
        metrics.record_stale_embeddings()
        with self._stale_lock:
            new = [m for m in stale if (collection, m) not in self._stale_warned]
            self._stale_warned.update((collection, m) for m in new)
        for model in new:
            logger.warning(
                "Collection {collection} holds chunks embedded by {stored_model}, but the query pipeline embeds "
                "questions with {query_model}: their vector search ranks them at random; index those documents again "
                "(rag ingest --replace, or PUT /documents/{{id}})",
                collection=collection,
                stored_model=model,
                query_model=expected,
            )

    def _run_data(
        self,
        question: str,
        collection: str,
        top_k: int | None,
        filters: dict[str, Any] | None,
        generate: bool,
        history: Sequence[ChatMessage] | None = None,
        instructions: str | None = None,
        visibility: dict[str, Any] | None = None,
    ) -> tuple[dict[str, dict[str, Any]], int]:
        if not isinstance(question, str) or not question.strip():
            raise InvalidInputError("question must be a non-empty string")
        if len(question) > self.max_question_chars:
            raise InvalidInputError(f"question is longer than {self.max_question_chars} characters")
        validate_collection(collection)
        k = self.default_top_k if top_k is None else top_k
        if not 1 <= k <= self.max_top_k:
            raise InvalidInputError(f"top_k must be between 1 and {self.max_top_k}")
        spec = self.pipelines.query
        values: dict[str, Any] = {
            "question": question.strip(),
            "filters": scoped_filters(collection, validate_filters(filters), visibility),
            "top_k": k,
            "generate": generate,
        }
        if "candidates" in spec.inputs:
            values["candidates"] = max(10, 2 * k)
        turns = validate_history(history)
        if turns and "history" in spec.inputs:
            values["history"] = turns
        elif turns:
            logger.warning("The query pipeline declares no `history` input: the question is answered without history")
        data = spec.run_data(**values)
        if instructions is not None and instructions.strip():
            data.setdefault(PROMPT_BUILDER, {})["instructions"] = self._instructions(instructions)
        return data, k

    def _instructions(self, instructions: str) -> str:
        """`instructions` for the prompt, when the pipeline's `prompt_builder` takes them (its template uses an
        `instructions` variable, as the shipped ones do in the system message); InvalidInputError otherwise."""
        if len(instructions) > self.max_question_chars:
            raise InvalidInputError(f"instructions are longer than {self.max_question_chars} characters")
        sockets = self.pipelines.query.pipeline.inputs(include_components_with_connected_inputs=True)
        if "instructions" not in sockets.get(PROMPT_BUILDER, {}):
            raise InvalidInputError(
                "instructions are not supported by this query pipeline: its prompt_builder's template has no "
                "`instructions` variable"
            )
        return instructions.strip()

    def ask(
        self,
        question: str,
        *,
        collection: str,
        top_k: int | None = None,
        filters: dict[str, Any] | None = None,
        generate: bool = True,
        streaming_callback: Callable[[StreamingChunk], None] | None = None,
        history: Sequence[ChatMessage] | None = None,
        instructions: str | None = None,
        visibility: dict[str, Any] | None = None,
    ) -> QueryResult:
        """Retrieve passages from `collection` and (unless `generate` is False) answer with citations.

        `history`: the conversation's earlier user/assistant turns, oldest first, without `question`; the pipeline's
        condenser rewrites a follow-up into a standalone question with them before retrieval (search-only queries
        too). InvalidInputError for other roles, empty messages or more than the bounds of `validate_history`.
        `instructions`: the caller's extra rules, added to the prompt's system message (OpenAI's Responses
        `instructions`); InvalidInputError when the pipeline's prompt takes none. `visibility`: the caller's read
        filter (`app.services.visibility.read_filter`), ANDed into the store query with the collection and `filters`.
        """
        spec = self.pipelines.query
        data, k = self._run_data(question, collection, top_k, filters, generate, history, instructions, visibility)
        citations = None
        if streaming_callback is not None and generate:
            # the streamed tokens carry the citations as the answer will: rewritten as they arrive
            citations = StreamedCitations.for_pipeline(spec.pipeline)
            callback = citations.wrap(streaming_callback) if citations is not None else streaming_callback
            data.setdefault("llm", {})["streaming_callback"] = callback
        started = time.perf_counter()
        passages_component = spec.outputs.get("passages", "").split(".", 1)[0]
        watcher = _PassagesWatcher(passages_component, started, lambda passages: None)
        with timing.timed_run() as components_ms, timing.watch_components(watcher, citations):
            try:
                result = spec.run(data)
            except PipelineRuntimeError as error:
                failure = pipeline_failure(error)
                if failure is error:
                    raise
                raise failure from error
        total = (time.perf_counter() - started) * 1000.0
        outputs = spec.read_outputs(result)
        answers = outputs.get("answers") or []
        # wall time until the passages were known (components may have run concurrently); else the stages' sum
        retrieval = watcher.retrieval_ms if watcher.seen else _retrieval_ms(components_ms, spec.outputs.get("passages"))
        return self.result(
            collection=collection,
            top_k=k,
            passages=outputs.get("passages") or [],
            answer=answers[0] if generate and answers else None,
            relevant=bool(outputs.get("relevant", True)),
            retrieval_ms=retrieval,
            total_ms=total,
            components_ms=components_ms,
            question=question,
            standalone_question=outputs.get("standalone_question"),
        )

    def result(
        self,
        *,
        collection: str,
        top_k: int,
        passages: list[Document],
        answer: GeneratedAnswer | None,
        relevant: bool,
        retrieval_ms: float,
        total_ms: float,
        components_ms: dict[str, float] | None = None,
        streamed_tokens: int = 0,
        question: str = "",
        standalone_question: str | None = None,
    ) -> QueryResult:
        """The one way a pipeline run becomes a result (JSON answer and SSE stream alike): sources and what they
        cite, refusal, timings, metrics and the log line. `answer` is None for a search-only run."""
        timings = {
            "retrieval": round(retrieval_ms, 2),
            "generation": round(max(total_ms - retrieval_ms, 0.0), 2) if answer is not None else 0.0,
            "total": round(total_ms, 2),
        }
        self._check_embedding_models(collection, passages)
        if answer is None:
            sources = [_source(i + 1, doc, False) for i, doc in enumerate(passages)]
            metrics.record_query(timings, generated=False)
            self._log_query(collection, top_k, timings, len(sources), refused=None, usage=None)
            return QueryResult(
                answer=None,
                sources=sources,
                timings_ms=timings,
                components_ms=components_ms or {},
                standalone_question=standalone_question,
            )
        refused = not relevant or _is_refusal(answer.data)
        sources = [
            _source(int(doc.meta.get("source_index", i + 1)), doc, bool(doc.meta.get("referenced")))
            for i, doc in enumerate(answer.documents or [])
        ]
        usage = _usage(answer.meta) or {}
        if streamed_tokens and not usage.get("completion_tokens"):
            usage["completion_tokens"] = streamed_tokens  # streamed llama.cpp replies carry no usage: chunk = token
        metrics.record_query(timings, generated=relevant)
        metrics.record_tokens(usage.get("prompt_tokens"), usage.get("completion_tokens"))
        self._log_query(collection, top_k, timings, len(sources), refused=refused, usage=usage or None)
        if self.log_content:
            logger.info("Question {question!r} answered {answer!r}", question=question, answer=answer.data)
        return QueryResult(
            answer=answer.data,
            sources=sources,
            timings_ms=timings,
            refused=refused,
            components_ms=components_ms or {},
            claims=[] if refused else _claims(answer.meta),
            standalone_question=standalone_question,
        )

    @staticmethod
    def _log_query(
        collection: str,
        top_k: int,
        timings: dict[str, float],
        sources: int,
        *,
        refused: bool | None,
        usage: dict[str, int] | None,
    ) -> None:
        """One line per query: sizes, timings and token counts, never the question or passage text."""
        logger.info(
            "Query in {collection}: top_k={top_k}, {sources} sources, retrieval {retrieval_ms} ms, "
            "generation {generation_ms} ms, total {total_ms} ms",
            collection=collection,
            top_k=top_k,
            sources=sources,
            refused=refused,
            retrieval_ms=timings["retrieval"],
            generation_ms=timings["generation"],
            total_ms=timings["total"],
            prompt_tokens=(usage or {}).get("prompt_tokens"),
            completion_tokens=(usage or {}).get("completion_tokens"),
        )


def _claims(meta: dict[str, Any] | None) -> list[Claim]:
    """The checked claims a `ClaimChecker` put in the reply's meta (AnswerBuilder carries it to the answer)."""
    raw = (meta or {}).get("claims")
    if not isinstance(raw, list):
        return []
    return [
        Claim(text=str(c["text"]), sources=list(c["sources"]), supported=bool(c["supported"]), score=c["score"])
        for c in raw
        if isinstance(c, dict) and {"text", "sources", "supported", "score"} <= c.keys()
    ]


def rewrites_answers(pipeline: Pipeline) -> bool:
    """Whether a component after the LLM may rewrite the answer's text (a `ClaimChecker` in drop or refuse mode), so
    a stream must hold the tokens back until the answer is final."""
    return any(isinstance(c, ClaimChecker) and c.rewrites_answers for _, c in pipeline.walk())


def _usage(meta: dict[str, Any] | None) -> dict[str, int] | None:
    """Token counts from a generator's reply meta (`usage`), when it reports them (streamed llama.cpp does not)."""
    usage = (meta or {}).get("usage")
    if not isinstance(usage, dict):
        return None
    return {k: int(v) for k, v in usage.items() if k in ("prompt_tokens", "completion_tokens") and isinstance(v, int)}


def pipeline_failure(error: PipelineRuntimeError) -> Exception:
    """What a failed query pipeline run amounts to, for the JSON answer and the stream alike: an upstream failure
    (502/503/504), a filter whose values do not fit the stored ones (400), else the error itself (500)."""
    upstream = upstream_error(error)
    if upstream is not None:
        return upstream
    mismatch = filter_mismatch(error)
    if mismatch is not None:
        return InvalidInputError(
            f"the filter cannot be applied to the stored metadata: {str(mismatch).splitlines()[0]}"
        )
    return error


@dataclass
class StreamEvent:
    """One step of a streamed answer: `sources`, `token`, `done` or `error` (its data: the exception, which the API
    layer turns into the same code and message the JSON route would answer)."""

    kind: str
    data: Any


def _is_refusal(text: str) -> bool:
    return text.strip().lower().startswith("i don't know")


class _StreamAbandoned(Exception):
    """Raised from the streaming callback once the client is gone, so the model stops and frees its thread."""


class _PassagesWatcher:
    """Passes the passages to the event loop the moment the component that outputs them returns (the sources
    event arrives before the answer), and keeps them, with the gate's verdict, for the final result."""

    def __init__(self, component: str, run_started: float, on_passages: Callable[[list[Document]], None]) -> None:
        self.component = component
        self.run_started = run_started
        self.on_passages = on_passages
        self.retrieval_ms = 0.0
        self.relevant = True
        self.passages: list[Document] = []
        self.seen = False

    def started(self, name: str, type_name: str) -> None:
        return None

    def received(self, name: str, type_name: str, inputs: dict[str, Any]) -> None:
        return None

    def returned(self, name: str, type_name: str, outputs: dict[str, Any]) -> None:
        if name != self.component or self.seen:
            return
        self.seen = True
        self.retrieval_ms = (time.perf_counter() - self.run_started) * 1000.0
        self.relevant = bool(outputs.get("relevant", True))
        self.passages = list(outputs.get("passages") or []) if self.relevant else []
        self.on_passages(self.passages)


async def stream_answer(
    service: QueryService,
    question: str,
    *,
    collection: str,
    top_k: int | None = None,
    filters: dict[str, Any] | None = None,
    generation: GenerationQueue,
    key_id: str,
    history: Sequence[ChatMessage] | None = None,
    instructions: str | None = None,
    visibility: dict[str, Any] | None = None,
) -> AsyncIterator[StreamEvent]:
    """
    Run the query pipeline on the model's queue and yield events as they happen: the passages as soon as retrieval
    is done, then every token the LLM produces (a sync streaming callback bridged to the event loop), then `done`
    with the answer, the cited numbers, the checked claims and timings. The `token` texts always add up to `done`'s
    answer: a `CitationRepointer`'s citations are rewritten in the tokens as they arrive (`StreamedCitations`), what
    the pipeline appends after generation (an inferred `[n]`) is one more `token` before `done`, and
    when a component may rewrite the answer (`rewrites_answers`) the tokens are held back and the final answer is
    sent as one `token`. `history` as for `QueryService.ask` (the follow-up is condensed before retrieval; `done`
    carries the `standalone_question`), `instructions` and `visibility` too. Before the first event:
    InvalidInputError for a bad request, GenerationBusyError/OverloadedError when `key_id`'s share or the queue is
    full. A pipeline failure after the start is an `error` event, never an exception.

    The whole run is one call of the synchronous pipeline on `generation`'s threads (not `run_async_generator`,
    whose sync components run on the event loop's default pool, where a generation waiting for the model would hold
    a thread that key checks and listings need).
    """
    spec = service.pipelines.query
    data, k = service._run_data(question, collection, top_k, filters, True, history, instructions, visibility)
    place = generation.admit(key_id)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[StreamEvent | None] = asyncio.Queue()
    streamed: list[str] = []  # what the LLM produced
    sent: list[str] = []  # what went out as `token` events (nothing until the end when the answer may be rewritten)
    hold = rewrites_answers(spec.pipeline)
    citations = None if hold else StreamedCitations.for_pipeline(spec.pipeline)
    abandoned = threading.Event()
    request_started = time.perf_counter()

    def emit(event: StreamEvent) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, event)

    def on_chunk(chunk: StreamingChunk) -> None:
        if abandoned.is_set():
            raise _StreamAbandoned("the client is gone")
        if chunk.content:
            streamed.append(chunk.content)
            if hold:
                return
            text = citations.feed(chunk.content) if citations is not None else chunk.content
            if not text:  # a citation still incomplete
                return
            if not sent:
                metrics.TIME_TO_FIRST_TOKEN.observe(time.perf_counter() - request_started)
            sent.append(text)
            emit(StreamEvent("token", text))

    data.setdefault("llm", {})["streaming_callback"] = on_chunk

    def on_passages(passages: list[Document]) -> None:
        emit(StreamEvent("sources", [_source(i + 1, d, False) for i, d in enumerate(passages)]))

    def run() -> tuple[_PassagesWatcher, dict[str, Any], float]:
        started = time.perf_counter()
        watcher = _PassagesWatcher(spec.outputs["passages"].split(".", 1)[0], started, on_passages)
        with timing.watch_components(watcher, citations):
            result = spec.run(data)
        return watcher, spec.read_outputs(result), (time.perf_counter() - started) * 1000.0

    async def drive() -> None:
        try:
            watcher, outputs, total = await asyncio.wrap_future(generation.submit(place, run))
            answers = outputs.get("answers") or []
            answer: GeneratedAnswer | None = answers[0] if answers else None
            rest = _unsent(answer.data if answer is not None else "", "".join(sent))
            if rest:  # an inferred citation, a held-back answer or a refusal from the gate (no LLM ran)
                if streamed and not sent:
                    metrics.TIME_TO_FIRST_TOKEN.observe(time.perf_counter() - request_started)
                queue.put_nowait(StreamEvent("token", rest))
            result = service.result(
                collection=collection,
                top_k=k,
                passages=watcher.passages,
                answer=answer,
                relevant=watcher.relevant,
                retrieval_ms=watcher.retrieval_ms,
                total_ms=total,
                streamed_tokens=len(streamed),
                question=question,
                standalone_question=outputs.get("standalone_question"),
            )
            queue.put_nowait(
                StreamEvent(
                    "done",
                    {
                        "answer": result.answer or "",
                        "refused": result.refused,
                        "cited": [source.n for source in result.sources if source.cited],
                        "claims": [asdict(claim) for claim in result.claims],
                        "timings_ms": result.timings_ms,
                        "standalone_question": result.standalone_question,
                    },
                )
            )
        except Exception as error:  # the streaming task's outermost boundary: every failure becomes an `error` event
            failure = pipeline_failure(error) if isinstance(error, PipelineRuntimeError) else error
            if isinstance(failure, RagError):
                logger.warning("Streaming query failed: {code}: {reason}", code=failure.code, reason=failure.message)
            else:  # internals (a store's SQL with filter values, a traceback) go to the log only
                logger.exception("Streaming query failed: {error}", error=str(error))
            queue.put_nowait(StreamEvent("error", failure))
        finally:
            queue.put_nowait(None)  # the thread's events are in already: its future resolves after them

    task = asyncio.create_task(drive())
    try:
        while (event := await queue.get()) is not None:
            yield event
    finally:
        abandoned.set()
        if not task.done():
            task.cancel()


def _unsent(answer: str, sent: str) -> str:
    """The end of `answer` the client has not been sent as tokens yet."""
    if answer.startswith(sent):
        return answer[len(sent) :]
    logger.warning(
        "The final answer does not continue the streamed tokens ({sent} characters sent): `done` has the answer",
        sent=len(sent),
    )
    return ""


def _retrieval_ms(components_ms: dict[str, float], passages_output: str | None) -> float:
    """Time of every component that finished up to the one that outputs the passages (completion order)."""
    gate = passages_output.split(".", 1)[0] if passages_output else None
    total = 0.0
    for name, ms in components_ms.items():
        total += ms
        if name == gate:
            break
    return total
