"""llama.cpp chat generation with a GGUF model that ships inside registry packages (the offline default)."""

import json
import threading
import weakref
from typing import Any

from haystack import component, default_to_dict
from haystack.dataclasses import ChatMessage
from haystack.dataclasses.streaming_chunk import StreamingCallbackT
from haystack.tools import ToolsType
from haystack.utils import serialize_callable
from haystack_integrations.components.generators.llama_cpp import LlamaCppChatGenerator

from components.env_values import OptionalCountOrReference, check_optional_count_reference, resolve_optional_count
from components.generators.gguf_models import CATALOG, resolve_gguf
from components.validation import check_int

# One loaded llama.cpp model per model file and arguments in the process, with its lock: generators with the same
# model (the answering `llm` and the question condenser's) share weights, context and queue instead of loading twice.
_SHARED_MODELS: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
_SHARED_LOCKS: dict[str, threading.Lock] = {}
_LOADING = threading.Lock()


def _model_key(model_kwargs: dict[str, Any]) -> str:
    return json.dumps(model_kwargs, sort_keys=True, default=repr)


@component
class PackagedLlamaCppChatGenerator(LlamaCppChatGenerator):
    """
    `LlamaCppChatGenerator` whose `model` may name a GGUF shipped in registry packages.

    `model` is either a catalog name (`qwen2.5-coder-1.5b-instruct-q4_k_m`, `qwen2.5-coder-0.5b-instruct-q4_k_m`,
    `smollm2-135m-instruct-q4_1`) or a path to a GGUF file. For a catalog name, `warm_up()` reassembles the file
    from its installed packages into `cache_dir` (once), verifies its sha256 and loads it. Environment variables in
    `cache_dir` are expanded at warm-up (`${RAG_DATA_DIR}/models`), and so is `n_threads` when it is a `${VAR:-}`
    reference (shipped YAML: `"${RAG_LLM_THREADS:-}"`; unset or empty: llama.cpp's own default, half the cores).
    Synchronous runs are serialized with a lock: llama.cpp is not thread-safe.
    Generators of one process whose resolved llama.cpp arguments (model file, `n_ctx`, `n_batch`, threads,
    `model_kwargs`) are equal share one loaded model and one lock (`generation_kwargs` may differ): a second
    generator for the same model, such as the question condenser's, costs no memory; the model is released when no
    generator holds it any more.
    Streaming works through Haystack's `streaming_callback` (a sync callable).
    """

    def __init__(
        self,
        *,
        model: str,
        cache_dir: str = "${RAG_DATA_DIR}/models",
        n_ctx: int = 4096,
        n_batch: int = 512,
        n_threads: OptionalCountOrReference = None,
        model_kwargs: dict[str, Any] | None = None,
        generation_kwargs: dict[str, Any] | None = None,
        streaming_callback: StreamingCallbackT | None = None,
    ) -> None:
        """
        :param model: Catalog name of a packaged GGUF or a path to a GGUF file.
        :param cache_dir: Where a multi-part packaged model is reassembled.
        :param n_ctx: Context window in tokens (prompt + answer).
        :param n_batch: Prompt-processing batch size.
        :param n_threads: CPU threads for generation: an integer, or a `${VAR:-}` reference resolved at warm-up;
            None (or an unset/empty variable) leaves it to llama.cpp (half the cores).
        :param model_kwargs: Extra `llama_cpp.Llama` arguments (override the ones above).
        :param generation_kwargs: `create_chat_completion` arguments, e.g. `max_tokens`, `temperature`.
        :param streaming_callback: Called with each `StreamingChunk`.
        """
        if not model:
            raise ValueError(f"model must be a GGUF path or one of {sorted(CATALOG)}")
        check_int(n_ctx, "n_ctx", minimum=256)
        check_int(n_batch, "n_batch", minimum=1)
        check_optional_count_reference(n_threads, "n_threads")
        self.model = model
        self.cache_dir = cache_dir
        self.n_threads = n_threads
        self.user_model_kwargs = dict(model_kwargs or {})
        kwargs: dict[str, Any] = {"verbose": False}
        kwargs.update(self.user_model_kwargs)
        LlamaCppChatGenerator.__init__(
            self,
            model=model,
            n_ctx=n_ctx,
            n_batch=n_batch,
            model_kwargs=kwargs,
            generation_kwargs=generation_kwargs,
            streaming_callback=streaming_callback,
        )
        self._run_lock = threading.Lock()

    def warm_up(self) -> None:
        """Resolve `n_threads` and the model file (reassembled and verified), then load it."""
        if self._model is not None:
            return
        threads = resolve_optional_count(self.n_threads, "n_threads")
        if threads is not None and "n_threads" not in self.user_model_kwargs:
            self.model_kwargs["n_threads"] = threads
        if "model_path" not in self.user_model_kwargs:
            self.model_kwargs["model_path"] = str(resolve_gguf(self.model, cache_dir=self.cache_dir))
        key = _model_key(self.model_kwargs)
        with _LOADING:
            shared = _SHARED_MODELS.get(key)
            if shared is None:
                LlamaCppChatGenerator.warm_up(self)
                _SHARED_MODELS[key] = shared = self._model
            self._model = shared
            self._run_lock = _SHARED_LOCKS.setdefault(key, threading.Lock())

    def close(self) -> None:
        """Drop this generator's reference to the model; it is freed once no generator of the process holds it."""
        self._model = None

    def to_dict(self) -> dict[str, Any]:
        """Serialize the component: `model_kwargs` as given (not the merged llama.cpp arguments), the callback by its
        import path. `LlamaCppChatGenerator.from_dict` deserializes into this class."""
        return default_to_dict(
            self,
            model=self.model,
            cache_dir=self.cache_dir,
            n_ctx=self.n_ctx,
            n_batch=self.n_batch,
            n_threads=self.n_threads,
            model_kwargs=self.user_model_kwargs,
            generation_kwargs=self.generation_kwargs,
            streaming_callback=serialize_callable(self.streaming_callback) if self.streaming_callback else None,
        )

    @component.output_types(replies=list[ChatMessage])
    def run(
        self,
        messages: list[ChatMessage] | str,
        generation_kwargs: dict[str, Any] | None = None,
        *,
        tools: ToolsType | None = None,
        streaming_callback: StreamingCallbackT | None = None,
    ) -> dict[str, list[ChatMessage]]:
        """Generate a reply; see `LlamaCppChatGenerator.run`. Concurrent calls are serialized."""
        with self._run_lock:
            return LlamaCppChatGenerator.run(
                self, messages, generation_kwargs=generation_kwargs, tools=tools, streaming_callback=streaming_callback
            )
