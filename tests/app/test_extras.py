"""Optional backends are extras: the default install serves the embedded default, and a missing extra is named."""

import json
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from app.extras import MissingExtraError, extra_for, extra_required
from app.pipeline_loader import missing_extra
from app.settings import PROJECT_ROOT

PYPROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())


@pytest.mark.parametrize(
    ("module", "extra"),
    [
        ("psycopg", "pgvector"),
        ("psycopg_pool", "pgvector"),
        ("haystack_integrations.document_stores.pinecone", "pinecone"),
        ("haystack_integrations.components.embedders.ollama", "ollama"),
        ("haystack_integrations.tracing.opentelemetry", "tracing"),
        ("components.retrievers.pooled_pgvector_keyword_retriever.PooledPgvectorKeywordRetriever", "pgvector"),
        ("haystack.components.generators.chat.openai.OpenAIChatGenerator", "openai"),
        ("rq", "redis"),
        ("haystack_integrations.components.rankers.cohere.CohereRanker", "rerank"),
        ("haystack_integrations.components.rankers.huggingface_api.HuggingFaceTEIRanker", "rerank"),
        ("components.rankers.http_reranker.HttpReranker", None),
        ("components.routers.relevance_gate.RelevanceGate", None),
        (None, None),
    ],
)
def test_extra_for_a_module_or_component_type(module, extra):
    assert extra_for(module) == extra


def test_extra_required_names_the_install_command():
    with pytest.raises(MissingExtraError) as info, extra_required("redis", "RAG_JOB_QUEUE=redis"):
        import ragstack_no_such_module  # noqa: F401

    assert info.value.extra == "redis"
    assert "RAG_JOB_QUEUE=redis needs the optional dependencies of ragstack[redis]" in str(info.value)
    assert 'pip install "ragstack[redis]"' in str(info.value)
    assert "ragstack_no_such_module" in str(info.value)


def test_missing_extra_reads_the_module_else_the_component_types():
    store = {"type": "haystack_integrations.document_stores.weaviate.document_store.WeaviateDocumentStore"}
    writer = {"type": "haystack.components.writers.DocumentWriter", "init_parameters": {"document_store": store}}
    wrapped = ImportError("Failed to import class")
    wrapped.__cause__ = ModuleNotFoundError("No module named 'weaviate'", name="weaviate")
    assert missing_extra(writer, RuntimeError("x")) is None
    assert missing_extra(writer, wrapped) == "weaviate"
    assert missing_extra(writer, ImportError("no name")) == "weaviate"  # from the nested store's type
    assert missing_extra(writer, MissingExtraError("ollama", "test")) == "ollama"


def test_every_extra_is_in_all_and_the_backends_are_not_default_dependencies():
    extras = PYPROJECT["project"]["optional-dependencies"]
    named = {"pgvector", "weaviate", "pinecone", "ollama", "openai", "redis", "tracing", "eval", "hayhooks"}
    assert named <= set(extras)
    (everything,) = extras["all"]
    assert everything.startswith("ragstack[") and everything.endswith("]")
    assert set(everything.removeprefix("ragstack[").removesuffix("]").split(",")) == set(extras) - {"all", "dev"}
    default = " ".join(PYPROJECT["project"]["dependencies"])
    for package in ("pgvector", "psycopg", "weaviate", "pinecone", "ollama", "rq", "opentelemetry", "matplotlib"):
        assert package not in default


# The modules of every extra but `openai` (haystack-ai itself depends on openai) and the OpenTelemetry API (FastAPI
# depends on it; the SDK and exporter are the `tracing` extra): a fresh process that cannot import them is what a
# default install looks like.
_DEFAULT_INSTALL = textwrap.dedent(
    """
    import importlib.abc, json, sys
    from pathlib import Path

    BLOCKED = ("psycopg", "psycopg_pool", "pgvector", "weaviate", "pinecone", "ollama", "rq", "redis",
               "opentelemetry.sdk", "opentelemetry.exporter", "matplotlib", "hayhooks", "cohere")
    INTEGRATIONS = {"pgvector", "weaviate", "pinecone", "ollama", "opentelemetry", "cohere", "huggingface_api"}
    attempted = []

    class NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, path, target=None):
            parts = fullname.split(".")
            blocked = any(fullname == name or fullname.startswith(name + ".") for name in BLOCKED)
            if blocked or (parts[0] == "haystack_integrations" and INTEGRATIONS & set(parts)):
                attempted.append(fullname)
                raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
            return None

    sys.meta_path.insert(0, NotInstalled())

    from app.extras import MissingExtraError
    from app.main import create_app
    from app.pipeline_loader import PipelineLoadError, load_pipelines
    from app.services.rate_limit import RateLimiter
    from app.settings import Settings
    from app.tracing import configure_tracing
    import app.cli, app.eval_report, app.api.deps

    root = Path(sys.argv[1])
    create_app(Settings(data_dir=root / "data", dev_mode=True))
    default = load_pipelines(root / "pipelines")
    report = {"default": type(default.document_store).__name__, "default_attempted": list(attempted)}
    for profile in ("pgvector", "weaviate", "pinecone", "ollama", "openai", "rerank"):
        try:
            load_pipelines(root / "pipelines" / "profiles" / profile)
            report[profile] = "loaded"
        except PipelineLoadError as error:
            report[profile] = str(error)
    for name, call in (
        ("redis", lambda: RateLimiter("10/minute", "redis://127.0.0.1:6379/0")),
        ("tracing", lambda: configure_tracing(Settings(otlp_endpoint="http://127.0.0.1:4318/v1/traces"))),
        ("eval", lambda: app.eval_report.plot([], root)),
    ):
        try:
            call()
            report[name] = "no error"
        except MissingExtraError as error:
            report[name] = str(error)
    print(json.dumps(report))
    """
)


@pytest.mark.integration
def test_a_default_install_serves_the_default_and_names_the_extra_of_each_backend(tmp_path):
    import shutil

    shutil.copytree(PROJECT_ROOT / "pipelines", tmp_path / "pipelines")
    env = {
        **os.environ,
        "RAG_DATA_DIR": str(tmp_path / "data"),
        "OPENAI_API_KEY": "sk-dummy",
        "PINECONE_API_KEY": "dummy",
        "PG_CONN_STR": "postgresql://nobody@127.0.0.1:1/none",
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    result = subprocess.run(
        [sys.executable, "-c", _DEFAULT_INSTALL, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])

    assert report["default"] == "LanceDBDocumentStore"
    assert report["default_attempted"] == [], "the default profile imported an optional backend"
    for profile in ("pgvector", "weaviate", "pinecone", "ollama"):
        assert f'pip install "ragstack[{profile}]"' in report[profile], report[profile]
        assert "component '" in report[profile]
    assert report["openai"] == "loaded"  # haystack-ai depends on openai itself
    assert report["rerank"] == "loaded"  # HttpReranker needs no extra
    assert 'pip install "ragstack[redis]"' in report["redis"]
    assert 'pip install "ragstack[tracing]"' in report["tracing"]
    assert 'pip install "ragstack[eval]"' in report["eval"]


@pytest.mark.parametrize(
    ("extras", "present", "absent"),
    [
        ("", ["lancedb==0.40.0", "fastapi>=0.115"], ["psycopg-pool>=3.2", "rq>=2.0", "matplotlib>=3.8"]),
        ("pgvector,redis", ["psycopg-pool>=3.2", "rq>=2.0", "lancedb==0.40.0"], ["matplotlib>=3.8"]),
        ("all", ["psycopg-pool>=3.2", "rq>=2.0", "matplotlib>=3.8", "hayhooks==2.1.0", "lancedb==0.40.0"], []),
    ],
)
def test_pyproject_requirements_lists_the_default_plus_extras_with_all_expanded(extras, present, absent):
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "scripts" / "pyproject_requirements.py"), extras],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    lines = result.stdout.splitlines()
    assert set(present) <= set(lines)
    assert not set(absent) & set(lines)
    assert not any(line.startswith("ragstack[") for line in lines)
    assert len(lines) == len(set(lines))


def test_the_dockerfile_installs_the_extras_the_compose_profiles_serve():
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    compose = (PROJECT_ROOT / "docker-compose.yml").read_text()
    line = next(line for line in dockerfile.splitlines() if line.startswith("ARG RAG_EXTRAS="))
    extras = set(line.split("=", 1)[1].strip('"').split(","))
    assert extras <= set(PYPROJECT["project"]["optional-dependencies"])
    served = {"pgvector", "weaviate", "ollama", "openai", "pinecone", "redis", "tracing"}
    assert served <= extras
    assert "RAG_PROFILE=openai" in compose and "RAG_JOB_QUEUE=redis" in compose  # what `served` stands for
    assert Path(PROJECT_ROOT / "scripts" / "pyproject_requirements.py").is_file()
