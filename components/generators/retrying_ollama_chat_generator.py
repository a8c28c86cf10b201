"""`OllamaChatGenerator` with retries (exponential backoff with jitter) on transient failures of the Ollama server.

ollama-haystack's own `max_retries` does not cover what fails in practice: it wraps only the call that opens the
request, so a streamed answer (read lazily afterwards) is never retried, and it retries the builtin
`ConnectionError`/`TimeoutError` while a timeout surfaces as `httpx.ReadTimeout`. The `ollama` client (0.6, httpx)
raises, as verified against a local fault-injecting server:

- HTTP error status: `ollama.ResponseError` with `status_code` (an `{"error": ...}` line inside a stream: `-1`);
- refused connection: builtin `ConnectionError` (non-streaming), raw `httpx.ConnectError` (streaming);
- timeout: `httpx.ReadTimeout` (an `httpx.TimeoutException`), never wrapped;
- connection dropped before a response / mid-body: `httpx.RemoteProtocolError`; reset by peer: `httpx.ReadError`.

`is_transient_ollama_error` and `ollama_retry_kwargs` are shared with the retrying Ollama embedders.
"""

import inspect
from collections.abc import Callable
from typing import Any, Literal

import httpx
from haystack import component, logging
from haystack.dataclasses import ChatMessage, StreamingCallbackT, StreamingChunk
from haystack.tools import ToolsType
from haystack_integrations.components.generators.ollama import OllamaChatGenerator
from ollama import AsyncClient, Client, ResponseError
from pydantic.json_schema import JsonSchemaValue
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from components.env_values import resolve_text
from components.validation import check_int, check_positive_number

logger = logging.getLogger(__name__)


class OllamaUrlFromEnvironment:
    """Mixin of the retrying Ollama components: their clients are created for the server the `url` setting stands for,
    a URL or a `${OLLAMA_URL:-http://...}` reference resolved from the environment at warm-up (the serialized YAML
    keeps the reference)."""

    url: str
    timeout: int
    _client: Client | None
    _async_client: AsyncClient | None

    def warm_up(self) -> None:
        """Create the synchronous client."""
        if self._client is None:
            self._client = Client(host=resolve_text(self.url, "url"), timeout=self.timeout)

    async def warm_up_async(self) -> None:
        """Create the asynchronous client."""
        if self._async_client is None:
            self._async_client = AsyncClient(host=resolve_text(self.url, "url"), timeout=self.timeout)


HTTP_TOO_MANY_REQUESTS = 429
HTTP_SERVER_ERROR = range(500, 600)
# Transport failures worth another attempt: connect errors (ollama wraps httpx.ConnectError as the builtin
# ConnectionError, except when streaming), timeouts, resets and connections dropped mid-response.
TRANSIENT_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)
# Newer tenacity (the installed 9.2) deprecates `initial` for `multiplier`; pyproject allows 8.2, which lacks it.
_JITTER_MULTIPLIER = "multiplier" in inspect.signature(wait_exponential_jitter.__init__).parameters


def is_transient_ollama_error(error: BaseException) -> bool:
    """True for failures another attempt may cure: HTTP 429 or 5xx, connect errors, timeouts, dropped connections."""
    if isinstance(error, ResponseError):
        return error.status_code == HTTP_TOO_MANY_REQUESTS or error.status_code in HTTP_SERVER_ERROR
    return isinstance(error, TRANSIENT_TRANSPORT_ERRORS)


def validate_retry_settings(retries: int, retry_initial_delay: float, retry_max_delay: float) -> None:
    """Raise `ValueError` unless `retries >= 0` and `0 < retry_initial_delay <= retry_max_delay`."""
    check_int(retries, "retries", minimum=0)
    check_positive_number(retry_initial_delay, "retry_initial_delay")
    check_positive_number(retry_max_delay, "retry_max_delay")
    if retry_initial_delay > retry_max_delay:
        raise ValueError(
            f"retry_initial_delay ({retry_initial_delay}) must not exceed retry_max_delay ({retry_max_delay})"
        )


def _backoff(initial: float, maximum: float) -> wait_exponential_jitter:
    """Waits of `initial * 2**n` seconds plus up to 1 s of jitter, capped at `maximum`."""
    if _JITTER_MULTIPLIER:
        return wait_exponential_jitter(multiplier=initial, max=maximum)
    return wait_exponential_jitter(initial=initial, max=maximum)


def ollama_retry_kwargs(
    owner: Any, operation: str, retryable: Callable[[BaseException], bool] = is_transient_ollama_error
) -> dict[str, Any]:
    """
    `Retrying`/`AsyncRetrying` arguments built from `owner.retries`, `owner.retry_initial_delay` and
    `owner.retry_max_delay`: `retries + 1` attempts at most, exponential backoff with jitter, the last error re-raised.

    :param owner: The component; its class name, `model` and `url` go into the retry log records.
    :param operation: What is retried (`chat`, `embed`), for the log records.
    :param retryable: Which errors are retried.
    """

    def log_retry(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        logger.warning(
            "{component} {operation} failed (attempt {attempt} of {attempts}), retrying in {delay}s: {error}",
            component=type(owner).__name__,
            operation=operation,
            attempt=state.attempt_number,
            attempts=owner.retries + 1,
            delay=round(delay, 3),
            error=repr(error),
            model=owner.model,
            url=owner.url,
        )

    return {
        "stop": stop_after_attempt(owner.retries + 1),
        "wait": _backoff(owner.retry_initial_delay, owner.retry_max_delay),
        "retry": retry_if_exception(retryable),
        "reraise": True,
        "before_sleep": log_retry,
    }


def _is_async_callable(callback: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(callback) or inspect.iscoroutinefunction(getattr(callback, "__call__", None))  # noqa: B004


class _DeliveryTracker:
    """Wraps a streaming callback and records whether any chunk reached it (then the answer must not be retried)."""

    def __init__(self) -> None:
        self.delivered = False

    def wrap(self, callback: StreamingCallbackT | None) -> StreamingCallbackT | None:
        if callback is None:
            return None
        if _is_async_callable(callback):

            async def relay_async(chunk: StreamingChunk) -> None:
                self.delivered = True
                await callback(chunk)  # type: ignore[misc]

            return relay_async

        def relay(chunk: StreamingChunk) -> None:
            self.delivered = True
            callback(chunk)

        return relay

    def retryable(self, error: BaseException) -> bool:
        return not self.delivered and is_transient_ollama_error(error)


@component
class RetryingOllamaChatGenerator(OllamaUrlFromEnvironment, OllamaChatGenerator):
    """
    `OllamaChatGenerator` that retries transient failures with exponential backoff and jitter.

    Retried: HTTP 429 and 5xx, refused connections, timeouts (`timeout` bounds each attempt) and dropped or reset
    connections. Never retried: other 4xx and anything else. A streamed answer is retried only while no chunk has
    reached the streaming callback, so a half-streamed answer is never streamed twice. At most `retries + 1`
    requests per `run`; each retry is logged as a warning.

    ```python
    llm = RetryingOllamaChatGenerator(model="llama3.2:3b", timeout=300, retries=2)
    llm.run(messages=[ChatMessage.from_user("Hi")])["replies"][0].text
    ```
    """

    def __init__(
        self,
        model: str = "qwen3:0.6b",
        url: str = "http://localhost:11434",
        generation_kwargs: dict[str, Any] | None = None,
        timeout: int = 120,
        max_retries: int = 0,
        keep_alive: float | str | None = None,
        streaming_callback: Callable[[StreamingChunk], None] | None = None,
        tools: ToolsType | None = None,
        response_format: None | Literal["json"] | JsonSchemaValue | None = None,
        think: bool | Literal["low", "medium", "high"] = False,
        *,
        retries: int = 2,
        retry_initial_delay: float = 0.5,
        retry_max_delay: float = 8.0,
    ) -> None:
        """
        Create the generator; the parameters up to `think` are `OllamaChatGenerator`'s.

        :param max_retries: ollama-haystack's own retry of the non-streaming request (no jitter, timeouts not
            covered). Leave it at 0: it multiplies with `retries`.
        :param retries: Further attempts after a transient failure (0 disables retrying).
        :param retry_initial_delay: Seconds before the first retry; doubles per retry, plus up to 1 s of jitter.
        :param retry_max_delay: Upper bound in seconds of any wait between attempts.
        :raises ValueError: If `retries < 0`, a delay is not > 0, or `retry_initial_delay > retry_max_delay`.
        """
        validate_retry_settings(retries, retry_initial_delay, retry_max_delay)
        OllamaChatGenerator.__init__(
            self,
            model=model,
            url=url,
            generation_kwargs=generation_kwargs,
            timeout=timeout,
            max_retries=max_retries,
            keep_alive=keep_alive,
            streaming_callback=streaming_callback,
            tools=tools,
            response_format=response_format,
            think=think,
        )
        self.retries = retries
        self.retry_initial_delay = retry_initial_delay
        self.retry_max_delay = retry_max_delay
        if max_retries > 0 and retries > 0:
            logger.warning(
                "RetryingOllamaChatGenerator has both max_retries={max_retries} and retries={retries}: "
                "up to {attempts} requests per run",
                max_retries=max_retries,
                retries=retries,
                attempts=(max_retries + 1) * (retries + 1),
            )

    def to_dict(self) -> dict[str, Any]:
        """Serialize the component: `OllamaChatGenerator`'s parameters (tools and callback serialized) plus the retry
        settings. `OllamaChatGenerator.from_dict` deserializes into this class."""
        data = OllamaChatGenerator.to_dict(self)
        data["init_parameters"].update(
            retries=self.retries, retry_initial_delay=self.retry_initial_delay, retry_max_delay=self.retry_max_delay
        )
        return data

    @component.output_types(replies=list[ChatMessage])
    def run(
        self,
        messages: list[ChatMessage] | str,
        generation_kwargs: dict[str, Any] | None = None,
        tools: ToolsType | None = None,
        *,
        streaming_callback: StreamingCallbackT | None = None,
    ) -> dict[str, list[ChatMessage]]:
        """
        `OllamaChatGenerator.run`, retried on transient failures as long as nothing has been streamed yet.

        :param messages: The chat history (a string becomes one user message).
        :param generation_kwargs: Ollama options merged over the init ones.
        :param tools: Overrides the init `tools`.
        :param streaming_callback: Receives each `StreamingChunk`; overrides the init callback.
        :returns: `replies`: the model's answer as a list with one `ChatMessage`.
        """
        tracker = _DeliveryTracker()
        relay = tracker.wrap(streaming_callback or self.streaming_callback)
        retrying = Retrying(**ollama_retry_kwargs(self, "chat", tracker.retryable))
        return retrying(OllamaChatGenerator.run, self, messages, generation_kwargs, tools, streaming_callback=relay)

    @component.output_types(replies=list[ChatMessage])
    async def run_async(
        self,
        messages: list[ChatMessage] | str,
        generation_kwargs: dict[str, Any] | None = None,
        tools: ToolsType | None = None,
        *,
        streaming_callback: StreamingCallbackT | None = None,
    ) -> dict[str, list[ChatMessage]]:
        """
        `OllamaChatGenerator.run_async`, retried on transient failures as long as nothing has been streamed yet.

        :param messages: The chat history (a string becomes one user message).
        :param generation_kwargs: Ollama options merged over the init ones.
        :param tools: Overrides the init `tools`.
        :param streaming_callback: Receives each `StreamingChunk` (sync or async); overrides the init callback.
        :returns: `replies`: the model's answer as a list with one `ChatMessage`.
        """
        tracker = _DeliveryTracker()
        relay = tracker.wrap(streaming_callback or self.streaming_callback)
        retrying = AsyncRetrying(**ollama_retry_kwargs(self, "chat", tracker.retryable))
        result: dict[str, list[ChatMessage]] = await retrying(
            OllamaChatGenerator.run_async, self, messages, generation_kwargs, tools, streaming_callback=relay
        )
        return result
