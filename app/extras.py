"""Optional backends are extras of the `ragstack` distribution (`[project.optional-dependencies]` in pyproject.toml).

The default install serves the embedded default profile; a pgvector, Weaviate, Pinecone, Ollama or OpenAI profile,
the Redis job queue, tracing, `rag eval`'s plots and Hayhooks need their extra. Code that uses one imports it where
it is used, inside `extra_required(...)`, so a missing extra fails with the command that installs it:

    with extra_required("redis", "RAG_JOB_QUEUE=redis"):
        from rq import Queue

The pipeline loader names the extra of a YAML component whose module cannot be imported (`extra_for`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

# A module path segment (or a `_`-separated word of one) -> the extra that installs it.
MODULE_EXTRAS: dict[str, str] = {
    "pgvector": "pgvector",
    "psycopg": "pgvector",
    "psycopg_pool": "pgvector",
    "weaviate": "weaviate",
    "pinecone": "pinecone",
    "ollama": "ollama",
    "openai": "openai",
    "rq": "redis",
    "redis": "redis",
    "opentelemetry": "tracing",
    "matplotlib": "eval",
    "hayhooks": "hayhooks",
    "boto3": "cluster",
    "cohere": "rerank",
    "huggingface_api": "rerank",
}


def install_hint(extra: str) -> str:
    """The pip commands that add `extra`, for an installed distribution and for a checkout."""
    return f'pip install "ragstack[{extra}]" (from a checkout: pip install -e ".[{extra}]")'


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the extra that provides it."""

    def __init__(self, extra: str, purpose: str, module: str | None = None) -> None:
        self.extra = extra
        missing = f" (module '{module}' is not installed)" if module else ""
        super().__init__(
            f"{purpose} needs the optional dependencies of ragstack[{extra}]{missing}: {install_hint(extra)}",
            name=module,
        )


@contextmanager
def extra_required(extra: str, purpose: str) -> Iterator[None]:
    """Turn a `ModuleNotFoundError` raised in the block into a `MissingExtraError` naming `extra`."""
    try:
        yield
    except ModuleNotFoundError as error:
        raise MissingExtraError(extra, purpose, error.name) from error


def extra_for(module_path: str | None) -> str | None:
    """The extra that installs a module or a component type path, if one does.

    `haystack_integrations.document_stores.pinecone` -> `pinecone`; `psycopg_pool` -> `pgvector`;
    `components.retrievers.pooled_pgvector_keyword_retriever.PooledPgvectorKeywordRetriever` -> `pgvector`.
    """
    if not module_path:
        return None
    for segment in module_path.split("."):
        if segment in MODULE_EXTRAS:
            return MODULE_EXTRAS[segment]
        for word in re.split(r"_+", segment):
            if word in MODULE_EXTRAS:
                return MODULE_EXTRAS[word]
    return None
