"""Answer a question through the query pipeline: collection-scoped hybrid retrieval, gate, LLM, citations."""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from haystack import Document, logging
from haystack.core.errors import PipelineRuntimeError
from haystack.dataclasses import StreamingChunk
from haystack.errors import FilterError

from app import metrics, timing
from app.errors import InvalidInputError, RagError
from app.pipeline_loader import PipelineSet
from app.services.ingest import validate_collection
from app.upstream import loaded_exceptions, upstream_error

logger = logging.getLogger(__name__)

_OPERATORS = {"==", "!=", ">", ">=", "<", "<=", "in", "not in"}
_FIELD = re.compile(r"^(content|id|meta\.[A-Za-z_][A-Za-z0-9_]{0,63}(\.[A-Za-z_][A-Za-z0-9_]{0,63})*)$")


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


@dataclass
class QueryResult:
    """The answer (None for a search-only query), its sources and timings in milliseconds."""

    answer: str | None
    sources: list[Source]
    timings_ms: dict[str, float]
    refused: bool = False
    components_ms: dict[str, float] = field(default_factory=dict)


def validate_filters(filters: dict[str, Any] | None) -> dict[str, Any] | None:
    """Check the Haystack filter syntax shallowly so a malformed filter is a 4xx, not a store error."""
    if filters is None:
        return None
    if not isinstance(filters, dict):
        raise InvalidInputError("filters must be an object in Haystack filter syntax")
    if "conditions" in filters:
        if filters.get("operator") not in ("AND", "OR", "NOT") or not isinstance(filters["conditions"], list):
            raise InvalidInputError("a logical filter needs operator AND/OR/NOT and a list of conditions")
        for condition in filters["conditions"]:
            validate_filters(condition)
        return filters
    if not isinstance(filters.get("field"), str) or filters.get("operator") not in _OPERATORS or "value" not in filters:
        raise InvalidInputError(
            "a comparison filter needs 'field', 'operator' (==, !=, >, >=, <, <=, in, not in) and 'value'"
        )
    if not _FIELD.match(filters["field"]):
        raise InvalidInputError(f"filter field {filters['field']!r} must be 'content', 'id' or 'meta.<name>'")
    value = filters["value"]
    if filters["operator"] in ("in", "not in"):
        if not isinstance(value, list) or not all(_is_filter_scalar(v) for v in value):
            raise InvalidInputError(f"operator '{filters['operator']}' needs a list of strings, numbers or booleans")
    elif not _is_filter_scalar(value) and value is not None:
        raise InvalidInputError("a filter value must be a string, number, boolean or null (a list for 'in')")
    return filters


def _pg_filter_errors() -> tuple[type[BaseException], ...]:
    """psycopg's DataError and UndefinedFunction, when the pgvector extra is in use (psycopg imported)."""
    return loaded_exceptions("psycopg", "DataError") + loaded_exceptions("psycopg.errors", "UndefinedFunction")


def _filter_mismatch(error: BaseException) -> BaseException | None:
    """The store's complaint about a filter's values (a type that cannot be compared with the stored one), if any.

    Haystack's in-memory matching (LanceDB) raises `FilterError`; PostgreSQL refuses the cast or the comparison
    (`DataError`: "invalid input syntax for type integer", `UndefinedFunction`: "operator does not exist").
    """
    seen: BaseException | None = error
    for _ in range(20):
        if seen is None:
            return None
        if isinstance(seen, (FilterError, *_pg_filter_errors())):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _is_filter_scalar(value: Any) -> bool:
    """Values every store can compare: strings, booleans, 64-bit integers, finite floats."""
    if isinstance(value, bool | str):
        return True
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    return isinstance(value, float) and math.isfinite(value)


def scoped_filters(collection: str, filters: dict[str, Any] | None) -> dict[str, Any]:
    """AND the collection into any user filter: a query never sees another collection's chunks."""
    scope = {"field": "meta.collection", "operator": "==", "value": collection}
    if not filters:
        return scope
    return {"operator": "AND", "conditions": [scope, filters]}


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

    def _run_data(
        self, question: str, collection: str, top_k: int | None, filters: dict[str, Any] | None, generate: bool
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
            "filters": scoped_filters(collection, validate_filters(filters)),
            "top_k": k,
            "generate": generate,
        }
        if "candidates" in spec.inputs:
            values["candidates"] = max(10, 2 * k)
        return spec.run_data(**values), k

    def ask(
        self,
        question: str,
        *,
        collection: str,
        top_k: int | None = None,
        filters: dict[str, Any] | None = None,
        generate: bool = True,
        streaming_callback: Callable[[StreamingChunk], None] | None = None,
    ) -> QueryResult:
        """Retrieve passages from `collection` and (unless `generate` is False) answer with citations."""
        spec = self.pipelines.query
        data, k = self._run_data(question, collection, top_k, filters, generate)
        if streaming_callback is not None and generate:
            data.setdefault("llm", {})["streaming_callback"] = streaming_callback
        started = time.perf_counter()
        with timing.timed_run() as components_ms:
            try:
                result = spec.pipeline.run(data, include_outputs_from=spec.include_outputs_from())
            except PipelineRuntimeError as error:
                upstream = upstream_error(error)
                if upstream is not None:
                    raise upstream from error
                mismatch = _filter_mismatch(error)
                if mismatch is not None:  # a well-formed filter whose values do not fit the stored ones
                    raise InvalidInputError(
                        f"the filter cannot be applied to the stored metadata: {str(mismatch).splitlines()[0]}"
                    ) from error
                raise
        total = (time.perf_counter() - started) * 1000.0
        outputs = spec.read_outputs(result)
        passages: list[Document] = outputs.get("passages") or []
        answers = outputs.get("answers") or []
        retrieval = _retrieval_ms(components_ms, spec.outputs.get("passages"))
        timings = {
            "retrieval": round(retrieval, 2),
            "generation": round(max(total - retrieval, 0.0), 2) if generate else 0.0,
            "total": round(total, 2),
        }
        if not generate or not answers:
            sources = [_source(i + 1, doc, False) for i, doc in enumerate(passages)]
            metrics.record_query(timings, generated=False)
            self._log_query(collection, k, timings, len(sources), refused=None, usage=None)
            return QueryResult(answer=None, sources=sources, timings_ms=timings, components_ms=components_ms)
        answer = answers[0]
        refused = not outputs.get("relevant", True) or _is_refusal(answer.data)
        sources = [
            _source(int(doc.meta.get("source_index", i + 1)), doc, bool(doc.meta.get("referenced")))
            for i, doc in enumerate(answer.documents or [])
        ]
        usage = _usage(answer.meta)
        llm_ran = bool(outputs.get("relevant", True))
        metrics.record_query(timings, generated=llm_ran)
        if usage:
            metrics.record_tokens(usage.get("prompt_tokens"), usage.get("completion_tokens"))
        self._log_query(collection, k, timings, len(sources), refused=refused, usage=usage)
        if self.log_content:
            logger.info("Question {question!r} answered {answer!r}", question=question, answer=answer.data)
        return QueryResult(
            answer=answer.data, sources=sources, timings_ms=timings, refused=refused, components_ms=components_ms
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


def _usage(meta: dict[str, Any] | None) -> dict[str, int] | None:
    """Token counts from a generator's reply meta (`usage`), when it reports them (streamed llama.cpp does not)."""
    usage = (meta or {}).get("usage")
    if not isinstance(usage, dict):
        return None
    return {k: int(v) for k, v in usage.items() if k in ("prompt_tokens", "completion_tokens") and isinstance(v, int)}


@dataclass
class StreamEvent:
    """One step of a streamed answer: `sources`, `token`, `done` or `error`."""

    kind: str
    data: Any


def _is_refusal(text: str) -> bool:
    return text.strip().lower().startswith("i don't know")


async def stream_answer(
    service: QueryService,
    question: str,
    *,
    collection: str,
    top_k: int | None = None,
    filters: dict[str, Any] | None = None,
) -> AsyncIterator[StreamEvent]:
    """
    Run the query pipeline and yield events as they happen: the passages as soon as retrieval is done, then every
    token the LLM produces (a sync streaming callback bridged to the event loop), then `done` with the answer,
    the cited numbers and timings. A pipeline failure after the start is an `error` event, never an exception.
    """
    spec = service.pipelines.query
    data, k = service._run_data(question, collection, top_k, filters, True)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[StreamEvent | None] = asyncio.Queue()

    streamed: list[str] = []
    request_started = time.perf_counter()

    def on_chunk(chunk: StreamingChunk) -> None:
        if chunk.content:
            if not streamed:
                metrics.TIME_TO_FIRST_TOKEN.observe(time.perf_counter() - request_started)
            streamed.append(chunk.content)
            loop.call_soon_threadsafe(queue.put_nowait, StreamEvent("token", chunk.content))

    data.setdefault("llm", {})["streaming_callback"] = on_chunk
    passages_component = spec.outputs["passages"].split(".", 1)[0]
    answers_component = spec.outputs["answers"].split(".", 1)[0]

    async def drive() -> None:
        started = time.perf_counter()
        retrieval_ms = 0.0
        answer = None
        relevant = True
        sent_sources = False
        try:
            async for partial in spec.pipeline.run_async_generator(
                data, include_outputs_from=spec.include_outputs_from()
            ):
                if passages_component in partial and not sent_sources:  # the final result repeats it
                    sent_sources = True
                    retrieval_ms = (time.perf_counter() - started) * 1000.0
                    out = partial[passages_component]
                    relevant = bool(out.get("relevant", True))
                    passages = out.get("passages") or [] if relevant else []
                    queue.put_nowait(StreamEvent("sources", [_source(i + 1, d, False) for i, d in enumerate(passages)]))
                if answers_component in partial:
                    answer = (partial[answers_component].get("answers") or [None])[0]
            total = (time.perf_counter() - started) * 1000.0
            text = answer.data if answer is not None else ""
            if text and not streamed:  # a refusal from the gate: no LLM ran, send it as one token
                queue.put_nowait(StreamEvent("token", text))
            cited = (
                [int(d.meta["source_index"]) for d in (answer.documents or []) if d.meta.get("referenced")]
                if answer
                else []
            )
            timings = {
                "retrieval": round(retrieval_ms, 2),
                "generation": round(total - retrieval_ms, 2),
                "total": round(total, 2),
            }
            usage = _usage(answer.meta if answer is not None else None) or {}
            # streamed llama.cpp replies carry no usage: one streamed chunk is one token there
            completion = usage.get("completion_tokens") or (len(streamed) if streamed else None)
            metrics.record_query(timings, generated=relevant)
            metrics.record_tokens(usage.get("prompt_tokens"), completion)
            service._log_query(
                collection,
                k,
                timings,
                len(cited),
                refused=not relevant or _is_refusal(text),
                usage={**usage, "completion_tokens": completion or 0},
            )
            queue.put_nowait(
                StreamEvent(
                    "done",
                    {
                        "answer": text,
                        "refused": not relevant or _is_refusal(text),
                        "cited": cited,
                        "timings_ms": timings,
                    },
                )
            )
        except (PipelineRuntimeError, RagError) as error:
            failure = error if isinstance(error, RagError) else upstream_error(error)
            code, message = (failure.code, failure.message) if failure is not None else ("pipeline_failed", str(error))
            logger.warning("Streaming query failed: {code}: {reason}", code=code, reason=message)
            metrics.ERRORS.labels(type=code).inc()
            queue.put_nowait(StreamEvent("error", {"code": code, "message": message}))
        finally:
            queue.put_nowait(None)

    task = asyncio.create_task(drive())
    try:
        while (event := await queue.get()) is not None:
            yield event
    finally:
        if not task.done():
            task.cancel()


def _retrieval_ms(components_ms: dict[str, float], passages_output: str | None) -> float:
    """Time of every component that finished up to the one that outputs the passages (completion order)."""
    gate = passages_output.split(".", 1)[0] if passages_output else None
    total = 0.0
    for name, ms in components_ms.items():
        total += ms
        if name == gate:
            break
    return total
