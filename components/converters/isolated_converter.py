"""Run any file converter in a worker process, with a time limit per file and a limit on the extracted text.

A parser stuck on a hostile file (an endless loop in a PDF content stream, a pathological HTML page) cannot be
stopped inside the server: threads cannot be killed. Here the inner converter runs in a long-lived worker process of
a `pebble.ProcessPool`; when a file takes longer than `timeout_s`, the worker is killed (and replaced) and the file
fails with `ParseTimeoutError`. A parser that crashes the interpreter (a segfault in a C library) only kills its
worker, and the file fails with `ConversionError`. A file whose text is longer than `max_text_chars` fails with
`TextTooLargeError` in the worker, before the text is sent back, cleaned, split or embedded.

One pool per server process is shared by every `IsolatedConverter`; each worker builds each inner converter once
and keeps it. Workers are started with `spawn`, never `fork` (the server runs threads, and forking a threaded
process can deadlock the child): a worker costs ~1 s to start and ~100 MB of memory. As with any `spawn`
multiprocessing, a script that runs a pipeline must keep its top-level code under `if __name__ == "__main__":`
(the `rag` CLI, uvicorn, Hayhooks and pytest do).
"""

from __future__ import annotations

import atexit
import fnmatch
import importlib
import json
import multiprocessing
import os
import signal
import threading
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from haystack import Document, component, default_to_dict, logging
from haystack.components.converters.utils import normalize_metadata
from haystack.core.serialization import component_from_dict, component_to_dict
from haystack.dataclasses import ByteStream
from pebble import ProcessExpired, ProcessPool

from components.converters.errors import ConversionError, ParseTimeoutError, TextTooLargeError
from components.converters.sources import source_name
from components.env_values import NumberOrReference, check_number_reference, resolve_number
from components.validation import check_int

logger = logging.getLogger(__name__)

# Inner converters may only come from these packages (the YAML names them; nothing else is imported).
ALLOWED_CONVERTER_MODULES = ("haystack.components.converters.", "components.converters.")
# Haystack's own setting for modules a deployment trusts in pipeline YAML ("mypkg,otherpkg.*"): inner converters from
# those modules are accepted too. The test plugin adds `app.testing` for a test session (worker processes inherit it).
DESERIALIZATION_ALLOWLIST_ENV = "HAYSTACK_DESERIALIZATION_ALLOWLIST"
DEFAULT_TIMEOUT_S = 300.0
DEFAULT_MAX_TEXT_CHARS = 5_000_000
MAX_WORKERS = 16


def _trusted_by_env(module_name: str) -> bool:
    """Whether HAYSTACK_DESERIALIZATION_ALLOWLIST names `module_name` (Haystack's matching: a glob, or a package)."""
    for pattern in (p.strip() for p in os.environ.get(DESERIALIZATION_ALLOWLIST_ENV, "").split(",")):
        if not pattern:
            continue
        if pattern.endswith(".*") and not any(char in pattern[:-2] for char in "*?["):
            pattern = pattern[:-2]  # `pkg.*`: pkg and its submodules
        if any(char in pattern for char in "*?["):
            if fnmatch.fnmatchcase(module_name, pattern):
                return True
        elif module_name == pattern or module_name.startswith(pattern + "."):
            return True
    return False


def _import_converter(type_name: str) -> type:
    allowed = isinstance(type_name, str) and (
        type_name.startswith(ALLOWED_CONVERTER_MODULES) or _trusted_by_env(type_name.rpartition(".")[0])
    )
    if not allowed:
        raise ValueError(
            f"converter type must be a class in {ALLOWED_CONVERTER_MODULES} or in a module named by "
            f"{DESERIALIZATION_ALLOWLIST_ENV}, got {type_name!r}"
        )
    module_name, _, class_name = type_name.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"cannot import converter module {module_name!r}: {error}") from error
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type) or component.registry.get(type_name) is not cls:
        raise ValueError(f"{type_name!r} is not a Haystack component class")
    return cls


def build_converter(spec: dict[str, Any]) -> Any:
    """Instantiate a converter from its serialized form (`{"type": ..., "init_parameters": {...}}`)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("init_parameters", {}), dict):
        raise ValueError(f"a serialized converter is a mapping with 'type' and 'init_parameters', got {spec!r}")
    cls = _import_converter(spec.get("type", ""))
    data = {"type": spec["type"], "init_parameters": dict(spec.get("init_parameters") or {})}
    return component_from_dict(cls, data, "converter")


# -- the worker process side --------------------------------------------------------------------------------------

_WORKER_CONVERTERS: dict[str, Any] = {}


def _init_worker() -> None:
    # Ctrl-C in a terminal reaches the whole process group: the server stops the pool itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _worker_converter(spec: dict[str, Any]) -> Any:
    key = json.dumps(spec, sort_keys=True, default=str)
    converter = _WORKER_CONVERTERS.get(key)
    if converter is None:
        converter = build_converter(spec)
        if hasattr(converter, "warm_up"):
            converter.warm_up()
        _WORKER_CONVERTERS[key] = converter
    return converter


def _prepare(spec: dict[str, Any]) -> int:
    """Build (and warm up) the converter in a worker; returns the worker's pid."""
    _worker_converter(spec)
    return os.getpid()


def _convert_one(
    spec: dict[str, Any], source: str | Path | ByteStream, metadata: dict[str, Any], max_chars: int
) -> list[Document]:
    name = source_name(source)
    try:
        documents: list[Document] = _worker_converter(spec).run(sources=[source], meta=[metadata])["documents"]
    except ConversionError:
        raise
    except Exception as error:  # noqa: BLE001  # the worker's outermost boundary: always send back a picklable error
        raise ConversionError(f"cannot convert {name}: {type(error).__name__}: {error}") from None
    chars = sum(len(document.content or "") for document in documents)
    if chars > max_chars:
        raise TextTooLargeError(
            f"the text extracted from {name} has {chars:,} characters, more than the limit of {max_chars:,}"
        )
    return documents


# -- the server side -----------------------------------------------------------------------------------------------

_POOLS: dict[tuple[int, int], ProcessPool] = {}
_POOLS_LOCK = threading.Lock()
_ATEXIT_REGISTERED = False


def _shared_pool(workers: int) -> ProcessPool:
    """The process-wide pool with `workers` workers (keyed by pid too: a forked child never reuses its parent's)."""
    global _ATEXIT_REGISTERED
    key = (os.getpid(), workers)
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None or not pool.active:
            pool = ProcessPool(
                max_workers=workers, initializer=_init_worker, context=multiprocessing.get_context("spawn")
            )
            _POOLS[key] = pool
            if not _ATEXIT_REGISTERED:
                atexit.register(shutdown_pools)
                _ATEXIT_REGISTERED = True
        return pool


def current_pool() -> ProcessPool:
    """The pool this process's converters already use (the largest, if several), else a new one-worker pool: other
    work on files (`pdf_inspection`) shares the converters' workers instead of starting its own."""
    with _POOLS_LOCK:
        pools = [(workers, pool) for (pid, workers), pool in _POOLS.items() if pid == os.getpid() and pool.active]
    if pools:
        return max(pools, key=lambda item: item[0])[1]
    return _shared_pool(1)


def shutdown_pools(timeout_s: float = 10.0) -> None:
    """Stop every worker pool of this process (registered with atexit; tests may call it)."""
    with _POOLS_LOCK:
        pools = [pool for (pid, _), pool in _POOLS.items() if pid == os.getpid()]
        _POOLS.clear()
    for pool in pools:
        pool.stop()
        pool.join(timeout=timeout_s)


@component
class IsolatedConverter:
    """
    Runs a file converter in a worker process with a time limit per file and a limit on the extracted text.

    `converter` is the inner converter (in YAML: its `type` + `init_parameters`, nested); it must be a class from
    `haystack.components.converters`, this project's `components.converters`, or a module the deployment trusts
    through Haystack's `HAYSTACK_DESERIALIZATION_ALLOWLIST` (as the pipeline needs). Each source is converted in a
    worker process, by a copy of the inner converter rebuilt from its serialized form; the Documents come back as the
    inner converter made them.

    - A file that takes longer than `timeout_s` raises `ParseTimeoutError`; its worker is killed and replaced.
    - A worker that dies while converting (a crash in a native parser) raises `ConversionError`.
    - A file whose Documents hold more than `max_text_chars` characters raises `TextTooLargeError`.
    - Errors of the inner converter (`ConversionError` and its subclasses) are raised as they are; any other error
      becomes a `ConversionError` naming it.

    `timeout_s` and `max_text_chars` are numbers or `${VAR:-default}` references resolved from the environment at
    warm-up (the app exports `RAG_PARSE_TIMEOUT_S` and `RAG_MAX_TEXT_CHARS` from its settings).
    """

    def __init__(
        self,
        *,
        converter: Any,
        timeout_s: NumberOrReference = DEFAULT_TIMEOUT_S,
        max_text_chars: NumberOrReference = DEFAULT_MAX_TEXT_CHARS,
        workers: int = 1,
    ) -> None:
        """
        Create the converter.

        :param converter: the inner converter: a component instance, or serialized as in YAML
            (`{"type": "<module.Class>", "init_parameters": {...}}`).
        :param timeout_s: seconds one file may take, or a `${VAR:-default}` reference.
        :param max_text_chars: characters of text one file may yield, or a `${VAR:-default}` reference.
        :param workers: worker processes of the shared pool (parallel files; each costs a Python process).
        :raises ValueError: on an invalid argument, an inner type outside the allowed packages, or inner
            init parameters the inner converter refuses.
        """
        if isinstance(converter, dict):
            converter = build_converter(converter)
        type_name = f"{type(converter).__module__}.{type(converter).__name__}"
        _import_converter(type_name)  # only converters from the allowed packages: a worker re-imports it by name
        check_number_reference(timeout_s, "timeout_s")
        check_number_reference(max_text_chars, "max_text_chars")
        self.workers = check_int(workers, "workers", minimum=1, maximum=MAX_WORKERS)
        self.converter = converter
        self._spec: dict[str, Any] = component_to_dict(converter, "converter")  # what a worker rebuilds it from
        self.timeout_s = timeout_s
        self.max_text_chars = max_text_chars
        self._timeout: float | None = None
        self._max_chars: int | None = None
        self._pool: ProcessPool | None = None

    def warm_up(self) -> None:
        """Resolve the limits, start the shared worker pool and build the inner converter in a worker."""
        if self._pool is not None and self._pool.active:
            return
        self._timeout = resolve_number(self.timeout_s, "timeout_s")
        self._max_chars = int(resolve_number(self.max_text_chars, "max_text_chars"))
        for attempt in (1, 2):
            pool = _shared_pool(self.workers)
            # the first task waits for the worker to start; its timeout is generous, it only guards against a hang
            try:
                pid = pool.schedule(_prepare, args=(self._spec,), timeout=max(self._timeout, 60.0)).result()
                break
            except BrokenProcessPool as error:
                # pebble gives up a pool whose worker ended while no task ran on it (seen once in CI, right after a
                # test whose parser timed out); the pool is inactive from then on, so the next one is new
                if attempt == 2:
                    raise
                logger.warning("The converter worker pool broke ({error}); starting a new one", error=str(error))
                pool.stop()
        self._pool = pool
        logger.debug(
            "Converter {type} ready in worker {pid} (timeout {timeout} s, max {chars} chars)",
            type=self._spec["type"],
            pid=pid,
            timeout=self._timeout,
            chars=self._max_chars,
        )

    def to_dict(self) -> dict[str, Any]:
        """Serialize the component: the defaults, with the inner converter in its serialized form."""
        return default_to_dict(
            self,
            converter=self._spec,
            timeout_s=self.timeout_s,
            max_text_chars=self.max_text_chars,
            workers=self.workers,
        )

    @component.output_types(documents=list[Document])
    def run(
        self,
        sources: list[str | Path | ByteStream],
        meta: dict[str, Any] | list[dict[str, Any]] | None = None,
    ) -> dict[str, list[Document]]:
        """
        Convert every source in a worker process, one task (and one time limit) per source.

        :param sources: file paths or ByteStreams.
        :param meta: metadata for all sources (dict) or one dict per source (list), passed to the inner converter.
        :returns: {"documents": [...]} in the order of the sources.
        :raises ParseTimeoutError: a source took longer than the timeout.
        :raises TextTooLargeError: a source yielded more text than allowed.
        :raises ConversionError: the inner converter failed, or its worker died.
        :raises BrokenProcessPool: the worker pool failed twice in a row (once is retried on a new pool).
        """
        if self._pool is None or not self._pool.active:
            self.warm_up()
        metadata = normalize_metadata(meta, sources_count=len(sources))
        try:
            return {"documents": self._convert(sources, metadata)}
        except BrokenProcessPool as error:
            # the pool itself failed under this batch (a crash on one file is ProcessExpired, a ConversionError):
            # not the files' doing, so they are converted once more on a new pool
            logger.warning("The converter worker pool broke ({error}); converting again on a new one", error=str(error))
            pool, self._pool = self._pool, None
            if pool is not None:
                pool.stop()
            self.warm_up()
            return {"documents": self._convert(sources, metadata)}

    def _convert(self, sources: list[str | Path | ByteStream], metadata: list[dict[str, Any]]) -> list[Document]:
        assert self._pool is not None and self._timeout is not None and self._max_chars is not None
        futures: list[Future[list[Document]]] = [
            self._pool.schedule(
                _convert_one, args=(self._spec, source, source_meta, self._max_chars), timeout=self._timeout
            )
            for source, source_meta in zip(sources, metadata, strict=True)
        ]
        documents: list[Document] = []
        try:
            for source, future in zip(sources, futures, strict=True):
                documents.extend(self._result(future, source_name(source)))
        finally:
            for future in futures:
                future.cancel()  # after a failure: stop the siblings still waiting or running
        return documents

    def _result(self, future: Future[list[Document]], name: str) -> list[Document]:
        try:
            return future.result()
        except TimeoutError:
            logger.warning(
                "Parsing {file} took longer than {timeout} s: its worker was stopped", file=name, timeout=self._timeout
            )
            raise ParseTimeoutError(
                f"parsing {name} took longer than {self._timeout:g} s (the limit per file) and was stopped"
            ) from None  # not chained: a TimeoutError cause would read as an upstream timeout
        except ProcessExpired as error:
            logger.warning("The parser worker died on {file} (exit code {code})", file=name, code=error.exitcode)
            raise ConversionError(f"the parser crashed on {name} (worker exit code {error.exitcode})") from error
