"""Upstream failure classification: every remote client's failure kinds map to 502, 503 or 504."""

import httpx
import openai
import pytest
from haystack.core.errors import PipelineRuntimeError
from psycopg_pool import PoolTimeout

from app.errors import UpstreamBadGatewayError, UpstreamTimeoutError, UpstreamUnavailableError
from app.upstream import upstream_error
from components.rankers.http_reranker import RerankerError
from components.stores.pgvector.document_store import StoreUnavailableError

REQUEST = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")


def _status(code: int) -> openai.APIStatusError:
    response = httpx.Response(code, request=REQUEST, json={"error": {"message": "x"}})
    return openai.APIStatusError("x", response=response, body=None)


def _wrapped(error: BaseException) -> PipelineRuntimeError:
    try:
        try:
            raise error
        except BaseException as inner:
            raise PipelineRuntimeError("llm", object, "failed") from inner
    except PipelineRuntimeError as outer:
        return outer


class _ServiceError(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(f"status {status_code}")
        self.status_code = status_code


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (_status(429), UpstreamUnavailableError),
        (_status(503), UpstreamUnavailableError),
        (_status(500), UpstreamBadGatewayError),
        (_status(401), UpstreamBadGatewayError),
        (openai.APITimeoutError(request=REQUEST), UpstreamTimeoutError),
        (httpx.ReadTimeout("slow", request=REQUEST), UpstreamTimeoutError),
        (httpx.ConnectError("refused", request=REQUEST), UpstreamUnavailableError),
        (httpx.RemoteProtocolError("dropped", request=REQUEST), UpstreamBadGatewayError),
        (StoreUnavailableError("down"), UpstreamUnavailableError),
        (PoolTimeout("no connection"), UpstreamUnavailableError),
        (_ServiceError(429), UpstreamUnavailableError),  # e.g. ollama.ResponseError, pinecone API errors
        (_ServiceError(502), UpstreamBadGatewayError),
        (TimeoutError(), UpstreamTimeoutError),
        (ConnectionResetError(), UpstreamUnavailableError),
    ],
)
def test_classification_through_a_pipeline_error(error, expected):
    assert type(upstream_error(_wrapped(error))) is expected
    assert type(upstream_error(error)) is expected


@pytest.mark.parametrize("error", [ValueError("bad prompt"), KeyError("x"), _ServiceError(400)])
def test_other_failures_are_not_upstream(error):
    assert upstream_error(_wrapped(error)) is None


def _reranker_error(status: int | None = None, cause: BaseException | None = None) -> RerankerError:
    try:
        try:
            raise cause or ValueError("no cause")
        except BaseException as inner:
            raise RerankerError("reranker at http://127.0.0.1:9/rerank failed", status_code=status) from (
                inner if cause is not None else None
            )
    except RerankerError as outer:
        return outer


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (_reranker_error(503), UpstreamUnavailableError),
        (_reranker_error(429), UpstreamUnavailableError),
        (_reranker_error(500), UpstreamBadGatewayError),
        (_reranker_error(504), UpstreamTimeoutError),
        (_reranker_error(400), UpstreamBadGatewayError),  # the reranker refused the service's request: not a 500
        (_reranker_error(422), UpstreamBadGatewayError),
        (_reranker_error(cause=httpx.ConnectError("refused", request=REQUEST)), UpstreamUnavailableError),
        (_reranker_error(cause=httpx.ReadTimeout("slow", request=REQUEST)), UpstreamTimeoutError),
        (_reranker_error(cause=httpx.RemoteProtocolError("dropped", request=REQUEST)), UpstreamBadGatewayError),
        (_reranker_error(), UpstreamBadGatewayError),  # an unreadable reply
    ],
)
def test_a_reranker_failure_is_named_and_never_a_500(error, expected):
    mapped = upstream_error(_wrapped(error))
    assert type(mapped) is expected
    assert "reranker" in str(mapped)
