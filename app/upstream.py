"""Recognise failures of remote dependencies anywhere in an exception chain and turn them into `UpstreamError`s.

Retries happen below this layer, in the clients' own settings (the OpenAI client's `max_retries`/`timeout`, the
pooled pgvector store's `retries`/`pool_timeout`, Ollama's `timeout`); what still fails arrives here once:

| upstream failure                                     | error                      | HTTP |
|------------------------------------------------------|----------------------------|------|
| rate limit (429), connection refused, store down     | `UpstreamUnavailableError` | 503  |
| 5xx answer, connection dropped mid-answer, bad reply | `UpstreamBadGatewayError`  | 502  |
| timeout (connect or read)                            | `UpstreamTimeoutError`     | 504  |

A reranking server's failure (`RerankerError`) maps the same way, and any other HTTP 4xx it answers (a wrong path or
model name) is a 502 too: the service's request was refused upstream, not the client's.

The clients of optional backends (psycopg, openai: extras of the distribution) are not imported here: their
exception classes are looked up among the modules already imported (`loaded_exceptions`), because an exception of a
client that was never imported cannot be in a chain.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Iterator
from types import ModuleType

from haystack.errors import FilterError

from app.errors import UpstreamBadGatewayError, UpstreamError, UpstreamTimeoutError, UpstreamUnavailableError

_MAX_DEPTH = 20
# httpx, and its fork httpx2 that recent openai clients use: the same exception names in both
_HTTP_CLIENTS: tuple[ModuleType, ...] = tuple(
    importlib.import_module(name) for name in ("httpx", "httpx2") if importlib.util.find_spec(name) is not None
)


def loaded_exceptions(module: str, *names: str) -> tuple[type[BaseException], ...]:
    """The exception classes `module.<name>` when `module` is already imported, else `()` (matches nothing)."""
    loaded = sys.modules.get(module)
    return tuple(getattr(loaded, name) for name in names) if loaded is not None else ()


def _store_down() -> tuple[type[BaseException], ...]:
    return (
        loaded_exceptions("components.stores.pgvector.document_store", "StoreUnavailableError")
        + loaded_exceptions("psycopg_pool", "PoolTimeout")
        + loaded_exceptions("psycopg", "OperationalError")
    )


def _is_http(error: BaseException, name: str) -> bool:
    return any(isinstance(error, getattr(module, name)) for module in _HTTP_CLIENTS)


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen and len(seen) < _MAX_DEPTH:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _by_status(status: int, what: str) -> UpstreamError | None:
    if status == 429:
        return UpstreamUnavailableError(f"{what} is rate-limiting requests (429); retry later")
    if status in (408, 504):
        return UpstreamTimeoutError(f"{what} timed out ({status})")
    if status == 503:
        return UpstreamUnavailableError(f"{what} is unavailable (503)")
    if status >= 500:
        return UpstreamBadGatewayError(f"{what} failed with HTTP {status}")
    if status in (401, 403):
        return UpstreamBadGatewayError(f"{what} rejected this service's credentials ({status}); check its API key")
    return None


def _reranker_failure(error: BaseException) -> UpstreamError:
    """A reranking server's failure (`components.rankers.http_reranker.RerankerError`), named as the reranker's."""
    status = getattr(error, "status_code", None)
    if isinstance(status, int):
        return _by_status(status, "reranker") or UpstreamBadGatewayError(
            f"reranker rejected the request (HTTP {status}); check its url, path and model"
        )
    cause = error.__cause__
    if cause is not None and (_is_http(cause, "TimeoutException") or isinstance(cause, TimeoutError)):
        return UpstreamTimeoutError("reranker timed out (after retries)")
    if cause is not None and _is_http(cause, "ConnectError"):
        return UpstreamUnavailableError("reranker unreachable (connection refused)")
    # a fixed message: the reranker's URL and reply stay in the server log, not in the client's error
    return UpstreamBadGatewayError("reranker failed: dropped connection or unreadable reply")


def _classify_one(error: BaseException) -> UpstreamError | None:
    if isinstance(error, loaded_exceptions("components.rankers.http_reranker", "RerankerError")):
        return _reranker_failure(error)
    if isinstance(error, _store_down()):
        return UpstreamUnavailableError(f"document store unavailable: {error}")
    if isinstance(error, loaded_exceptions("openai", "APITimeoutError")):
        return UpstreamTimeoutError("LLM server timed out (after retries)")
    if isinstance(error, loaded_exceptions("openai", "APIConnectionError")):
        cause = error.__cause__
        if cause is not None and _is_http(cause, "ConnectError"):
            return UpstreamUnavailableError("LLM server unreachable (connection refused)")
        return UpstreamBadGatewayError("LLM server closed the connection without a complete answer")
    if isinstance(error, loaded_exceptions("openai", "APIStatusError")):
        return _by_status(error.status_code, "LLM server")  # type: ignore[attr-defined]
    if _is_http(error, "TimeoutException"):
        return UpstreamTimeoutError(f"upstream timed out ({type(error).__name__})")
    if _is_http(error, "ConnectError"):
        return UpstreamUnavailableError("upstream unreachable (connection refused)")
    if _is_http(error, "RemoteProtocolError"):
        return UpstreamBadGatewayError("upstream closed the connection without a complete answer")
    if _is_http(error, "HTTPStatusError"):
        return _by_status(error.response.status_code, "upstream")  # type: ignore[attr-defined]
    # Clients of other services (ollama.ResponseError, pinecone/weaviate API errors) carry an HTTP status.
    status = getattr(error, "status_code", None)
    if isinstance(status, int) and not isinstance(error, UpstreamError):
        return _by_status(status, f"upstream ({type(error).__module__.split('.')[0]})")
    if isinstance(error, TimeoutError):
        return UpstreamTimeoutError("upstream timed out")
    if isinstance(error, ConnectionError):
        return UpstreamUnavailableError(f"upstream unreachable ({type(error).__name__})")
    return None


def upstream_error(error: BaseException) -> UpstreamError | None:
    """The `UpstreamError` a failure amounts to, or None when it is not an upstream failure."""
    for link in _chain(error):
        if isinstance(link, UpstreamError):
            return link
        classified = _classify_one(link)
        if classified is not None:
            return classified
    return None


def filter_mismatch(error: BaseException) -> BaseException | None:
    """The store's complaint about a filter's values (a type that cannot be compared with the stored one), if any.

    Haystack's in-memory matching (LanceDB) raises `FilterError`; PostgreSQL refuses the cast or the comparison
    (`DataError`: "invalid input syntax for type integer", `UndefinedFunction`: "operator does not exist").
    """
    mismatches: tuple[type[BaseException], ...] = (
        FilterError,
        *loaded_exceptions("psycopg", "DataError"),
        *loaded_exceptions("psycopg.errors", "UndefinedFunction"),
    )
    for link in _chain(error):
        if isinstance(link, mismatches):
            return link
    return None
