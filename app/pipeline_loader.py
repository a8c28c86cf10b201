"""The one place where pipelines are loaded from YAML.

- Plain YAML only (`yaml.safe_load`: python tags such as `!!python/tuple` are refused).
- Our own `components` package is allowlisted explicitly; `unsafe=True` is never used.
- Every document store in a pipeline set is shared: indexing and query get the same instance per store config,
  through Haystack's `DeserializationCallbacks(component_pre_init=...)`.
- Hayhooks' `inputs:`/`outputs:` sections are the pipeline's public contract: the service feeds inputs and reads
  outputs by those names, so routes never hard-code component names.
- `concurrency_limit: N` (top level, N > 1) runs the pipeline with Haystack's concurrent scheduler
  (`Pipeline.run_async`): components whose inputs are ready run at the same time, at most N at once (the query
  pipeline's keyword search overlaps the query embedding and the vector search). `PipelineSpec.run` does it from a
  synchronous caller, on an event loop of the calling thread's own; absent or 1: `Pipeline.run`, one at a time.
- Any failure raises `PipelineLoadError` naming the file and, where it can be known, the component; a component
  whose module cannot be imported because an optional backend is not installed names the extra to install
  (`pip install "ragstack[pinecone]"`, see `app.extras`).
- A profile falls back to the default's file for a pipeline it does not define: `pipelines/profiles/<name>/` with
  only `query.yml` uses `pipelines/indexing.yml` (and vice versa). The default directory is found by layout: the
  `pipelines/` folder two levels above a directory whose parent is named `profiles`; any other directory (a copy
  in a temp dir, RAG_PIPELINES_DIR elsewhere) must hold both files, or a caller passes `default_dir` itself.
  The file used is logged.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from haystack import Pipeline, logging
from haystack.core.errors import DeserializationError, PipelineError
from haystack.core.serialization import DeserializationCallbacks
from haystack.errors import FilterError

from app.extras import MissingExtraError, extra_for, install_hint

logger = logging.getLogger(__name__)

ALLOWED_MODULES = ["components"]
PIPELINE_FILES = ("indexing", "query")
# Errors a component's own from_dict/__init__ raises for bad YAML values.
_COMPONENT_ERRORS = (DeserializationError, PipelineError, ValueError, TypeError, KeyError, ImportError, FilterError)


class PipelineLoadError(RuntimeError):
    """A pipeline YAML cannot be loaded; the message names the file and the component."""

    def __init__(self, file: Path, reason: str, component: str | None = None) -> None:
        self.file = file
        self.component = component
        self.reason = reason
        where = f"{file}" + (f", component '{component}'" if component else "")
        super().__init__(f"Cannot load pipeline {where}: {reason}")


@dataclass
class PipelineSpec:
    """A loaded pipeline with its declared inputs and outputs."""

    name: str
    path: Path
    pipeline: Pipeline
    inputs: dict[str, list[str]]
    outputs: dict[str, str]
    concurrency_limit: int = 1

    def run(self, data: dict[str, Any], include_outputs_from: set[str] | None = None) -> dict[str, Any]:
        """Run the pipeline on `data`, keeping the declared outputs' components (and `include_outputs_from`).

        With `concurrency_limit` > 1, through `Pipeline.run_async` on this thread's event loop (see `_thread_loop`):
        the call still blocks this thread until the run is done, and the same exceptions come out of it. From a thread
        that is running an event loop already, `Pipeline.run`.
        """
        include = self.include_outputs_from() | (include_outputs_from or set())
        if self.concurrency_limit <= 1 or _loop_running():
            return self.pipeline.run(data, include_outputs_from=include)
        limit = self.concurrency_limit
        coroutine = self.pipeline.run_async(data, include_outputs_from=include, concurrency_limit=limit)
        # the caller's context variables (timing scope, component watcher, tracing span) reach the components
        return _thread_loop(limit).run(coroutine, context=contextvars.copy_context())

    def run_data(self, **values: Any) -> dict[str, dict[str, Any]]:
        """Map declared input names to `{component: {socket: value}}`; `None` values are left out."""
        data: dict[str, dict[str, Any]] = {}
        for name, value in values.items():
            if name not in self.inputs:
                raise KeyError(f"pipeline '{self.name}' declares no input '{name}' (declared: {sorted(self.inputs)})")
            if value is None:
                continue
            for target in self.inputs[name]:
                component, socket = target.split(".", 1)
                data.setdefault(component, {})[socket] = value
        return data

    def include_outputs_from(self) -> set[str]:
        """Components whose outputs must be kept in the result because they are declared outputs."""
        return {path.split(".", 1)[0] for path in self.outputs.values()}

    def read_outputs(self, result: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Pick the declared outputs out of a pipeline result (missing ones are None)."""
        picked: dict[str, Any] = {}
        for name, path in self.outputs.items():
            component, socket = path.split(".", 1)
            picked[name] = result.get(component, {}).get(socket)
        return picked


_threads = threading.local()


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _thread_loop(workers: int) -> asyncio.Runner:
    """This thread's event loop for concurrent pipeline runs, created on first use and kept for the thread's life.

    Its executor (where `run_async` runs synchronous components) is its own, `workers` threads at most: a model
    generating on one request's loop never holds a thread another request's retrieval needs, and the API's own
    event loop and default executor are not involved.
    """
    runner: asyncio.Runner | None = getattr(_threads, "runner", None)
    if runner is None:
        runner = asyncio.Runner()
        runner.get_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pipeline-component")
        )
        _threads.runner = runner
    return runner


@dataclass
class PipelineSet:
    """The indexing and query pipelines of one profile, sharing their document store."""

    directory: Path
    indexing: PipelineSpec
    query: PipelineSpec
    document_store: Any
    stores: list[Any] = field(default_factory=list)

    def _text_embedder(self) -> Any | None:
        """The query's question embedder, by role (`text_embedder`), or None when the pipeline has none."""
        if "text_embedder" not in {name for name, _ in self.query.pipeline.walk()}:
            return None
        return self.query.pipeline.get_component("text_embedder")

    @property
    def query_embedding_model(self) -> str | None:
        """The model name of the query's `text_embedder` (None without one, or when it names no model)."""
        model = getattr(self._text_embedder(), "model", None)
        return model if isinstance(model, str) and model else None

    def warm_up(self) -> None:
        """Load models and open resources once, then check that the embedder fits the store."""
        self.indexing.pipeline.warm_up()
        self.query.pipeline.warm_up()
        self.check_embedding_dimension()

    def check_embedding_dimension(self) -> None:
        """Embed a probe with the query's `text_embedder` and compare with the store's declared dimension.

        A store whose vectors have another size than the embedder's would fail on the first write or query with a
        database error; this names both numbers at start instead. Skipped when the embedder or the store does not
        expose what is needed; a remote embedder that cannot be reached at start only logs a warning.
        """
        declared = next(
            (
                getattr(self.document_store, a)
                for a in ("embedding_dimension", "embedding_dim", "dimension")
                if isinstance(getattr(self.document_store, a, None), int)
            ),
            None,
        )
        embedder = self._text_embedder()
        if declared is None or embedder is None:
            return
        try:
            embedding = embedder.run(text="embedding dimension probe")["embedding"]
        except (OSError, RuntimeError, ValueError) as error:
            logger.warning("Embedding dimension not checked: the text embedder failed ({error})", error=str(error))
            return
        if len(embedding) != declared:
            raise PipelineLoadError(
                self.query.path,
                f"the text embedder produces {len(embedding)}-dimensional vectors but the document store declares "
                f"{declared}: set the store's dimension to {len(embedding)} (and use a new table/index) or change "
                "the embedder",
                component="text_embedder",
            )


class _StoreSharing:
    """Replaces every document store passed to a component by one instance per serialized config."""

    def __init__(self) -> None:
        self.stores: dict[str, Any] = {}

    def __call__(self, name: str, component_cls: type, init_params: dict[str, Any]) -> None:
        for key, value in init_params.items():
            if _is_document_store(value):
                config = json.dumps(value.to_dict(), sort_keys=True, default=str)
                init_params[key] = self.stores.setdefault(config, value)


def _is_document_store(value: Any) -> bool:
    return all(hasattr(value, attr) for attr in ("to_dict", "write_documents", "filter_documents", "count_documents"))


def read_yaml(path: Path) -> dict[str, Any]:
    """Parse a pipeline file as plain YAML and check its top-level shape."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise PipelineLoadError(path, f"cannot read file ({error.strerror or error})") from error
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise PipelineLoadError(path, f"invalid YAML (plain YAML only, no python tags): {error}") from error
    if not isinstance(data, dict) or not isinstance(data.get("components"), dict) or not data["components"]:
        raise PipelineLoadError(path, "expected a mapping with a non-empty 'components' section")
    for name, spec in data["components"].items():
        if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
            raise PipelineLoadError(path, "every component needs a 'type'", component=str(name))
    return data


def _chain(error: BaseException) -> list[BaseException]:
    links: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and all(current is not seen for seen in links) and len(links) < 20:
        links.append(current)
        current = current.__cause__ or current.__context__
    return links


def _types_in(value: Any) -> list[str]:
    """Every `type:` path in a component spec, nested ones (a document store in init_parameters) included."""
    if isinstance(value, dict):
        own = [value["type"]] if isinstance(value.get("type"), str) else []
        return own + [path for item in value.values() for path in _types_in(item)]
    if isinstance(value, list):
        return [path for item in value for path in _types_in(item)]
    return []


def missing_extra(spec: dict[str, Any], error: BaseException) -> str | None:
    """The extra to install when a component failed to load because an optional module is missing, else None.

    Named by the missing module (`ModuleNotFoundError.name`), else by the component's type paths
    (`haystack_integrations.document_stores.pinecone...` -> `pinecone`).
    """
    links = _chain(error)
    for link in links:
        if isinstance(link, MissingExtraError):
            return link.extra
    import_errors = [link for link in links if isinstance(link, ImportError)]
    for link in import_errors:
        extra = extra_for(link.name)
        if extra:
            return extra
    if import_errors:
        return next((extra for path in _types_in(spec) if (extra := extra_for(path))), None)
    return None


def _diagnose(path: Path, data: dict[str, Any], error: Exception) -> PipelineLoadError:
    """Find which component a failed load came from by loading each one alone."""
    for name, spec in data["components"].items():
        try:
            Pipeline.from_dict({"components": {name: spec}, "connections": []}, allowed_modules=ALLOWED_MODULES)
        except _COMPONENT_ERRORS as component_error:
            cause = component_error.__cause__ or component_error  # Haystack wraps the component's own error
            reason = f"{type(cause).__name__}: {cause}"
            extra = missing_extra(spec, component_error)
            if extra:
                reason += f"; it needs the optional dependencies of ragstack[{extra}]: {install_hint(extra)}"
            return PipelineLoadError(path, reason, component=name)
    return PipelineLoadError(path, f"{type(error).__name__}: {error}")


def _declared_io(path: Path, data: dict[str, Any], pipeline: Pipeline) -> tuple[dict[str, list[str]], dict[str, str]]:
    inputs_decl = data.get("inputs") or {}
    outputs_decl = data.get("outputs") or {}
    if not isinstance(inputs_decl, dict) or not isinstance(outputs_decl, dict):
        raise PipelineLoadError(path, "'inputs' and 'outputs' must be mappings of name -> 'component.socket'")
    sockets_in = pipeline.inputs(include_components_with_connected_inputs=True)
    sockets_out = pipeline.outputs(include_components_with_connected_outputs=True)
    inputs: dict[str, list[str]] = {}
    for name, targets in inputs_decl.items():
        target_list = [targets] if isinstance(targets, str) else list(targets)
        for target in target_list:
            component, _, socket = str(target).partition(".")
            if socket not in sockets_in.get(component, {}):
                raise PipelineLoadError(path, f"input '{name}' targets unknown socket '{target}'", component=component)
        inputs[str(name)] = [str(t) for t in target_list]
    outputs: dict[str, str] = {}
    for name, source in outputs_decl.items():
        component, _, socket = str(source).partition(".")
        if socket not in sockets_out.get(component, {}):
            raise PipelineLoadError(path, f"output '{name}' reads unknown socket '{source}'", component=component)
        outputs[str(name)] = str(source)
    return inputs, outputs


def load_pipeline(
    path: Path, *, on_component_init: Callable[[str, type, dict[str, Any]], None] | None = None
) -> PipelineSpec:
    """Load one pipeline YAML into a `PipelineSpec`."""
    data = read_yaml(path)
    callbacks = DeserializationCallbacks(component_pre_init=on_component_init) if on_component_init else None
    try:
        pipeline = Pipeline.from_dict(data, callbacks=callbacks, allowed_modules=ALLOWED_MODULES)
    except _COMPONENT_ERRORS as error:
        raise _diagnose(path, data, error) from error
    inputs, outputs = _declared_io(path, data, pipeline)
    concurrency = data.get("concurrency_limit", 1)
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise PipelineLoadError(path, f"'concurrency_limit' must be an integer >= 1, got {concurrency!r}")
    return PipelineSpec(
        name=path.stem, path=path, pipeline=pipeline, inputs=inputs, outputs=outputs, concurrency_limit=concurrency
    )


def default_directory(directory: Path) -> Path | None:
    """The default profile's directory a profile falls back to: `pipelines/` for `pipelines/profiles/<name>/`."""
    resolved = directory.resolve()
    return resolved.parent.parent if resolved.parent.name == "profiles" else None


def _own_file(directory: Path, name: str) -> Path | None:
    for suffix in (".yml", ".yaml"):
        candidate = directory / f"{name}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def pipeline_file(directory: Path, name: str, *, default_dir: Path | None = None) -> Path:
    """The YAML file of pipeline `name` ("indexing" or "query") for a profile directory.

    The directory's own `<name>.yml` (or `.yaml`); else the same file of `default_dir`, which defaults to
    `default_directory(directory)`. Raises `PipelineLoadError` ("file not found") when neither exists.
    """
    own = _own_file(directory, name)
    if own is not None:
        return own
    fallback_dir = default_dir if default_dir is not None else default_directory(directory)
    fallback = _own_file(fallback_dir, name) if fallback_dir is not None else None
    if fallback is None:
        tried = f" (nor in the default directory {fallback_dir})" if fallback_dir is not None else ""
        raise PipelineLoadError(directory / f"{name}.yml", f"file not found{tried}")
    logger.info(
        "Profile {directory} has no {pipeline}.yml: using the default's {file}",
        directory=str(directory),
        pipeline=name,
        file=str(fallback),
    )
    return fallback


def _stores_of(pipeline: Pipeline) -> list[Any]:
    found: list[Any] = []
    for _, instance in pipeline.walk():
        store = getattr(instance, "document_store", None) or getattr(instance, "_document_store", None)
        if store is not None and _is_document_store(store) and all(store is not s for s in found):
            found.append(store)
    return found


def check_chunks_fit_embedder(indexing: PipelineSpec) -> None:
    """Every chunk's full text must reach the dense index: with a document embedder that truncates at `max_length`
    tokens, a `ChunkSizeGuard` must split longer chunks, counting the same tokens the embedder sees.

    :raises PipelineLoadError: naming the setting to change when the guard is missing or disagrees with the embedder.
    """
    from components.embedders.onnx_document_embedder import OnnxDocumentEmbedder
    from components.preprocessors.chunk_size_guard import ChunkSizeGuard

    components = list(indexing.pipeline.walk())
    embedders = [(n, c) for n, c in components if isinstance(c, OnnxDocumentEmbedder)]
    guards = [(n, c) for n, c in components if isinstance(c, ChunkSizeGuard)]
    for name, embedder in embedders:
        if not guards:
            raise PipelineLoadError(
                indexing.path,
                f"the embedder keeps {embedder.max_length} tokens of each chunk and no ChunkSizeGuard splits longer "
                f"chunks, so their end would never be embedded: add a ChunkSizeGuard before it with max_tokens: "
                f"{embedder.max_length}",
                component=name,
            )
        for guard_name, guard in guards:
            expected = {
                "max_tokens": embedder.max_length,
                "tokenizer": embedder.tokenizer,
                "meta_fields_to_embed": embedder.meta_fields_to_embed,
                "embedding_separator": embedder.embedding_separator,
            }
            wrong = [key for key, value in expected.items() if getattr(guard, key) != value]
            if key_errors := [
                k
                for k in wrong
                if k != "max_tokens" or guard.max_tokens is None or guard.max_tokens > embedder.max_length
            ]:
                settings = ", ".join(f"{key}: {expected[key]!r}" for key in key_errors)
                raise PipelineLoadError(
                    indexing.path,
                    f"chunks may be longer than the {embedder.max_length} tokens the embedder {name!r} keeps, so "
                    f"their end would never be embedded: set {settings} on the guard (as on the embedder)",
                    component=guard_name,
                )


def check_reuser_matches_embedder(indexing: PipelineSpec) -> None:
    """An `EmbeddingReuser` hashes the text the document embedder embeds: both must name the same meta fields and
    separator, else a chunk whose embedded header changed would keep its old embedding.

    :raises PipelineLoadError: naming the setting to change.
    """
    from components.embedders.embedding_reuser import EmbeddingReuser

    components = list(indexing.pipeline.walk())
    reusers = [(n, c) for n, c in components if isinstance(c, EmbeddingReuser)]
    embedders = [
        (n, c)
        for n, c in components
        if type(c).__name__.endswith("DocumentEmbedder") and hasattr(c, "meta_fields_to_embed")
    ]
    for name, reuser in reusers:
        for embedder_name, embedder in embedders:
            fields = list(getattr(embedder, "meta_fields_to_embed", None) or [])
            separator = getattr(embedder, "embedding_separator", "\n")
            model = getattr(embedder, "model", None)
            if isinstance(model, str) and reuser.embedder_model != model:
                raise PipelineLoadError(
                    indexing.path,
                    f"the reuser would reuse embeddings of another model than the embedder {embedder_name!r} makes: "
                    f"set embedder_model: {model!r} on it",
                    component=name,
                )
            if reuser.meta_fields_to_embed != fields or reuser.embedding_separator != separator:
                raise PipelineLoadError(
                    indexing.path,
                    f"the reuser hashes other text than the embedder {embedder_name!r} embeds: set "
                    f"meta_fields_to_embed: {fields!r} and embedding_separator: {separator!r} on it",
                    component=name,
                )


def _models_of(spec: PipelineSpec, suffix: str) -> list[tuple[str, str]]:
    """(name, model) of the components whose class name ends with `suffix` and that name their model."""
    found = []
    for name, component in spec.pipeline.walk():
        model = getattr(component, "model", None)
        if type(component).__name__.endswith(suffix) and isinstance(model, str):
            found.append((name, model))
    return found


def check_query_embedder_matches(indexing: PipelineSpec, query: PipelineSpec) -> None:
    """Queries are embedded by the model that embedded the chunks, and a `ContextSelector` (which is given the query
    embedding) embeds its sentences with that model too: else a cosine compares vectors of two models.

    :raises PipelineLoadError: naming the setting to change.
    """
    from components.builders.context_selector import ContextSelector

    document_models = _models_of(indexing, "DocumentEmbedder")
    text_models = _models_of(query, "TextEmbedder")
    for text_name, text_model in text_models:
        for document_name, document_model in document_models:
            if text_model != document_model:
                raise PipelineLoadError(
                    query.path,
                    f"queries would be embedded by another model than the indexing embedder {document_name!r} "
                    f"uses: set model: {document_model!r} on it",
                    component=text_name,
                )
    for name, component in query.pipeline.walk():
        if not isinstance(component, ContextSelector):
            continue
        for text_name, text_model in text_models:
            if getattr(component, "model", None) != text_model:
                raise PipelineLoadError(
                    query.path,
                    f"the selector would compare its sentences with a query embedding of another model than its "
                    f"own (the query embedder {text_name!r}): set model: {text_model!r} on it",
                    component=name,
                )


def load_pipelines(directory: Path, *, default_dir: Path | None = None) -> PipelineSet:
    """Load `indexing.yml` and `query.yml` from `directory`, sharing one store instance per store config.

    A file the directory lacks comes from `default_dir` (by default the `pipelines/` above `profiles/<name>/`).
    """
    sharing = _StoreSharing()
    indexing = load_pipeline(pipeline_file(directory, "indexing", default_dir=default_dir), on_component_init=sharing)
    query = load_pipeline(pipeline_file(directory, "query", default_dir=default_dir), on_component_init=sharing)
    query_stores = _stores_of(query.pipeline)
    indexing_stores = _stores_of(indexing.pipeline)
    if len(query_stores) != 1:
        raise PipelineLoadError(query.path, f"expected exactly one document store, found {len(query_stores)}")
    if indexing_stores and any(store is not query_stores[0] for store in indexing_stores):
        raise PipelineLoadError(
            indexing.path, "the indexing pipeline writes to a different document store config than query.yml reads"
        )
    check_chunks_fit_embedder(indexing)
    check_reuser_matches_embedder(indexing)
    check_query_embedder_matches(indexing, query)
    logger.info(
        "Loaded pipelines from {directory}: {indexing} and {query}",
        directory=str(directory),
        indexing=str(indexing.path),
        query=str(query.path),
    )
    return PipelineSet(
        directory=directory,
        indexing=indexing,
        query=query,
        document_store=query_stores[0],
        stores=list(sharing.stores.values()),
    )
