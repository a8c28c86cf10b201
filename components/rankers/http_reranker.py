"""Rerank passages with a reranking server the deployment runs itself: TEI, Cohere-compatible or Jina-compatible.

One small HTTP client for the three request/response shapes self-hosted rerankers speak:

- `tei` (`/rerank`): sends `{query, texts, raw_scores, truncate}`, reads `[{index, score}]`;
- `cohere` (`/v2/rerank`): sends `{model, query, documents, top_n}`, reads `{results: [{index, relevance_score}]}`;
- `jina` (`/v1/rerank`): sends `{model, query, documents, top_n, return_documents}`, reads the same `results`.

Text Embeddings Inference serves `tei`; vLLM, Infinity, LiteLLM and similar servers serve the Cohere shape (often at
`/v1/rerank` too: set `path`); Jina's API and its compatible servers the Jina shape. The maintained Haystack
integrations (`HuggingFaceTEIRanker`, `CohereRanker`) also work against such servers; this component exists for
what they lack here: one dependency-free client with a timeout, bounded retries and failures the service can name
(`RerankerError`, mapped to 502/503/504 by `app.upstream`), and a Jina-compatible client that takes a base URL.
"""

from __future__ import annotations

import random
import time
from dataclasses import replace
from typing import Any, Literal, get_args

import httpx
from haystack import Document, component, default_from_dict, default_to_dict, logging
from haystack.utils import Secret, deserialize_secrets_inplace

from components.env_values import resolve_text
from components.validation import check_int, check_positive_number

logger = logging.getLogger(__name__)

RerankApi = Literal["tei", "cohere", "jina"]
DEFAULT_PATHS: dict[str, str] = {"tei": "/rerank", "cohere": "/v2/rerank", "jina": "/v1/rerank"}
RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
RETRIED_TRANSPORT_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
_ERROR_BODY_CHARS = 300


class RerankerError(RuntimeError):
    """The reranking server failed: unreachable, timed out, answered an HTTP error or an unreadable reply.

    `status_code` is the HTTP status when the server answered one; the transport error, if any, is the `__cause__`.
    """

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


@component
class HttpReranker:
    """
    Reorders passages by a reranking server's relevance scores, keeping each passage's meta.

    Each returned `Document` is the input one with `score` replaced by the server's relevance score, most relevant
    first; at most `top_k` are returned. The dense scores the relevance gate reads come from the embedding retriever,
    not from here, so a reranker placed between the joiner and the gate leaves the gate's decision unchanged.

    ```python
    ranker = HttpReranker(api="tei", url="http://localhost:8080", top_k=5)
    ranker.run(query="What is WAL mode?", documents=fused)["documents"]
    ```
    """

    def __init__(
        self,
        *,
        api: RerankApi = "tei",
        url: str = "${RAG_RERANK_URL:-http://localhost:8080}",
        path: str | None = None,
        model: str | None = None,
        api_key: Secret | None = Secret.from_env_var("RAG_RERANK_API_KEY", strict=False),  # noqa: B008
        top_k: int = 5,
        meta_fields_to_embed: list[str] | None = None,
        timeout: float = 10.0,
        retries: int = 2,
        retry_initial_delay: float = 0.25,
        retry_max_delay: float = 2.0,
    ) -> None:
        """
        :param api: The server's protocol: `tei` (Text Embeddings Inference), `cohere` or `jina`.
        :param url: The server's base URL, or a `${VAR:-default}` reference resolved at warm-up.
        :param path: The endpoint path under `url`; default per `api`: `/rerank`, `/v2/rerank`, `/v1/rerank`.
        :param model: The model name sent to Cohere- and Jina-compatible servers (TEI serves one model: unused).
        :param api_key: Sent as `Authorization: Bearer <key>` when it resolves to a value (default: the
            `RAG_RERANK_API_KEY` variable, optional).
        :param top_k: How many passages to return (a run's `top_k` overrides it).
        :param meta_fields_to_embed: Meta fields (e.g. `title`) prepended to the text the server scores.
        :param timeout: Seconds per request (connect and read).
        :param retries: Further attempts after a transient failure (HTTP 408/429/5xx, refused or dropped
            connection, timeout); never after another 4xx. 0 disables retrying.
        :param retry_initial_delay: Seconds before the first retry; doubles per retry, plus up to 10 % jitter.
        :param retry_max_delay: Upper bound of any wait between attempts, in seconds.
        :raises ValueError: An unknown `api`, a URL that is neither http(s) nor a reference, or a bad number.
        """
        if api not in get_args(RerankApi):
            raise ValueError(f"api must be one of {get_args(RerankApi)}, got {api!r}")
        if not url.strip().startswith(("http://", "https://", "${")):
            raise ValueError(f"url must be an http(s) URL or a '${{VAR:-default}}' reference, got {url!r}")
        if path is not None and not path.startswith("/"):
            raise ValueError(f"path must start with '/', got {path!r}")
        if api != "tei" and not model:
            raise ValueError(f"model is required for a {api}-compatible server")
        check_int(top_k, "top_k", minimum=1)
        check_positive_number(timeout, "timeout")
        check_int(retries, "retries", minimum=0)
        check_positive_number(retry_initial_delay, "retry_initial_delay")
        check_positive_number(retry_max_delay, "retry_max_delay")
        self.api = api
        self.url = url
        self.path = path
        self.model = model
        self.api_key = api_key
        self.top_k = top_k
        self.meta_fields_to_embed = list(meta_fields_to_embed or [])
        self.timeout = timeout
        self.retries = retries
        self.retry_initial_delay = retry_initial_delay
        self.retry_max_delay = retry_max_delay
        self._client: httpx.Client | None = None
        self._endpoint = ""

    def warm_up(self) -> None:
        """Resolve the URL and open the connection pool (no request is sent)."""
        if self._client is not None:
            return
        base = resolve_text(self.url, "url").rstrip("/")
        if not base.startswith(("http://", "https://")):
            raise ValueError(f"url must resolve to an http(s) URL, got {base!r} (from {self.url!r})")
        self._endpoint = base + (self.path or DEFAULT_PATHS[self.api])
        headers = {"Content-Type": "application/json"}
        key = self.api_key.resolve_value() if self.api_key is not None else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(timeout=self.timeout, headers=headers)

    def close(self) -> None:
        """Close the connection pool (a later run opens a new one)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def to_dict(self) -> dict[str, Any]:
        """Serialize to a dictionary (the API key as its environment variable, never its value)."""
        return default_to_dict(
            self,
            api=self.api,
            url=self.url,
            path=self.path,
            model=self.model,
            api_key=self.api_key.to_dict() if self.api_key is not None else None,
            top_k=self.top_k,
            meta_fields_to_embed=self.meta_fields_to_embed,
            timeout=self.timeout,
            retries=self.retries,
            retry_initial_delay=self.retry_initial_delay,
            retry_max_delay=self.retry_max_delay,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HttpReranker:
        """Deserialize from a dictionary."""
        deserialize_secrets_inplace(data["init_parameters"], keys=["api_key"])
        return default_from_dict(cls, data)

    @component.output_types(documents=list[Document])
    def run(self, query: str, documents: list[Document], top_k: int | None = None) -> dict[str, list[Document]]:
        """
        :param query: The question the passages are scored against.
        :param documents: The passages to rerank (usually the fused hybrid candidates).
        :param top_k: How many to return (default: the init `top_k`).
        :returns: `documents`: at most `top_k` passages, most relevant first, `score` = the server's score.
        :raises RerankerError: The server failed (after retries) or answered something unreadable.
        """
        k = self.top_k if top_k is None else check_int(top_k, "top_k", minimum=1)
        if not documents:
            return {"documents": []}
        self.warm_up()
        try:
            ranked = self._scores(self._post(self._body(query, documents, k)), len(documents))
        except RerankerError as error:  # the service answers a fixed message; the details are logged here
            logger.warning("Reranking failed: {error}", error=str(error), url=self._endpoint)
            raise
        ranked.sort(key=lambda pair: (-pair[1], pair[0]))
        return {"documents": [replace(documents[index], score=score) for index, score in ranked[:k]]}

    # -- the protocols --------------------------------------------------------------------------------------------

    def _text(self, document: Document) -> str:
        meta = [str(document.meta[f]) for f in self.meta_fields_to_embed if document.meta.get(f)]
        return "\n".join([*meta, document.content or ""])

    def _body(self, query: str, documents: list[Document], top_k: int) -> dict[str, Any]:
        texts = [self._text(document) for document in documents]
        if self.api == "tei":
            return {"query": query, "texts": texts, "raw_scores": False, "truncate": True}
        body: dict[str, Any] = {"model": self.model, "query": query, "documents": texts, "top_n": top_k}
        if self.api == "jina":
            body["return_documents"] = False
        return body

    def _scores(self, reply: Any, count: int) -> list[tuple[int, float]]:
        items = reply if self.api == "tei" else reply.get("results") if isinstance(reply, dict) else None
        if not isinstance(items, list):
            raise RerankerError(f"reranker at {self._endpoint} answered an unexpected shape for api '{self.api}'")
        key = "score" if self.api == "tei" else "relevance_score"
        ranked: list[tuple[int, float]] = []
        for item in items:
            index = item.get("index") if isinstance(item, dict) else None
            score = item.get(key) if isinstance(item, dict) else None
            if (
                not isinstance(index, int)
                or isinstance(index, bool)
                or not 0 <= index < count
                or not isinstance(score, int | float)
            ):
                raise RerankerError(f"reranker at {self._endpoint} answered an invalid result {item!r}")
            ranked.append((index, float(score)))
        return ranked

    # -- transport ------------------------------------------------------------------------------------------------

    def _post(self, body: dict[str, Any]) -> Any:
        assert self._client is not None  # warm_up ran
        attempts = self.retries + 1
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._client.post(self._endpoint, json=body)
                response.raise_for_status()
                return response.json()
            except httpx.HTTPStatusError as error:
                status = error.response.status_code
                failure = RerankerError(
                    f"reranker at {self._endpoint} answered HTTP {status}: {error.response.text[:_ERROR_BODY_CHARS]}",
                    status_code=status,
                )
                if status not in RETRIED_STATUSES or attempt == attempts:
                    raise failure from error
            except RETRIED_TRANSPORT_ERRORS as error:
                failure = RerankerError(f"reranker at {self._endpoint} failed: {type(error).__name__}: {error}")
                if attempt == attempts:
                    raise failure from error
            except ValueError as error:  # a 2xx whose body is not JSON
                raise RerankerError(f"reranker at {self._endpoint} answered invalid JSON") from error
            delay = min(self.retry_max_delay, self.retry_initial_delay * 2 ** (attempt - 1))
            delay += random.uniform(0, delay / 10)  # jitter, not cryptography
            logger.warning(
                "Reranker request failed (attempt {attempt} of {attempts}), retrying in {delay}s: {error}",
                attempt=attempt,
                attempts=attempts,
                delay=round(delay, 3),
                error=str(failure),
                url=self._endpoint,
            )
            time.sleep(delay)
