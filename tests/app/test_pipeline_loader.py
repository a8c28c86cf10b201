import shutil

import pytest
import yaml

from app.pipeline_loader import PipelineLoadError, load_pipeline, load_pipelines, pipeline_file, read_yaml
from app.settings import PROJECT_ROOT
from app.testing.profiles import copy_profile, edit_yaml

PIPELINES = PROJECT_ROOT / "pipelines"


@pytest.fixture
def profile(tmp_path, monkeypatch):
    """A writable copy of the shipped pipelines with a private data dir."""
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "data"))
    return copy_profile(tmp_path / "pipelines")


def test_shipped_yaml_is_plain_and_declares_hayhooks_io():
    for name in ("indexing.yml", "query.yml"):
        text = (PIPELINES / name).read_text()
        assert "!!python" not in text
        data = yaml.safe_load(text)
        assert data["inputs"] and data["outputs"]


def test_shipped_pipelines_load_and_share_one_store(profile):
    pipelines = load_pipelines(profile)
    writer_store = pipelines.indexing.pipeline.get_component("writer").document_store
    query = pipelines.query.pipeline
    assert writer_store is pipelines.document_store
    assert query.get_component("embedding_retriever").document_store is writer_store
    assert query.get_component("keyword_retriever").document_store is writer_store
    assert pipelines.query.inputs["question"] == ["condenser.question"]
    assert pipelines.query.inputs["history"] == ["condenser.history"]
    standalone = {
        f"{receiver}.{socket}"
        for sender, receiver, edge in query.graph.edges(data=True)
        if sender == "condenser"
        for socket in [edge["to_socket"].name]
    }
    assert standalone == {  # every component that works on the question gets the standalone one
        "text_embedder.text",
        "keyword_retriever.query",
        "selector.question",
        "answerability.question",
        "prompt_builder.question",
        "answer_builder.query",
    }
    assert pipelines.query.outputs["answers"] == "answer_builder.answers"


def test_round_trip_dumps_loads(profile):
    from haystack import Pipeline

    spec = load_pipeline(profile / "query.yml")
    dumped = spec.pipeline.dumps()
    assert "!!python" not in dumped
    reloaded = Pipeline.loads(dumped, allowed_modules=["components"])
    original, again = spec.pipeline.to_dict(), reloaded.to_dict()
    assert again["components"] == original["components"]

    def edges(d):
        return sorted((c["sender"], c["receiver"]) for c in d["connections"])

    assert edges(again) == edges(original)


def test_yaml_edits_swap_splitter_chunking_top_k_model_and_prompt(profile):
    def indexing(data):
        data["components"]["splitter"] = {
            "type": "components.preprocessors.semantic_document_splitter.SemanticDocumentSplitter",
            "init_parameters": {
                "min_length": 100,
                "max_length": 500,
                "document_embedder": {
                    "type": "components.embedders.onnx_document_embedder.OnnxDocumentEmbedder",
                    "init_parameters": {},
                },
            },
        }
        data["components"]["csv_converter"]["init_parameters"]["converter"]["init_parameters"]["max_chars"] = 500
        del data["inputs"]["split_length"], data["inputs"]["split_overlap"]  # this splitter has no such inputs

    def query(data):
        data["components"]["joiner"]["init_parameters"]["top_k"] = 3
        data["components"]["llm"]["init_parameters"]["model"] = "smollm2-135m-instruct-q4_1"
        data["components"]["prompt_builder"]["init_parameters"]["template"] = (
            '{% message role="user" %}Q: {{ question }} '
            "{% for d in documents %}{{ d.content }}{% endfor %}{% endmessage %}"
        )

    edit_yaml(profile / "indexing.yml", indexing)
    edit_yaml(profile / "query.yml", query)
    pipelines = load_pipelines(profile)
    splitter = pipelines.indexing.pipeline.get_component("splitter")
    assert type(splitter).__name__ == "SemanticDocumentSplitter"
    assert splitter.max_length == 500
    q = pipelines.query.pipeline
    assert q.get_component("joiner").top_k == 3
    assert q.get_component("llm").model == "smollm2-135m-instruct-q4_1"
    assert "Q: {{ question }}" in q.get_component("prompt_builder").template


def test_yaml_edit_swaps_chunk_size(profile):
    edit_yaml(
        profile / "indexing.yml", lambda d: d["components"]["splitter"]["init_parameters"].update(split_length=400)
    )
    splitter = load_pipelines(profile).indexing.pipeline.get_component("splitter")
    assert splitter.split_length == 400


def test_unknown_component_type_names_file_and_component(profile):
    edit_yaml(profile / "query.yml", lambda d: d["components"]["joiner"].update(type="haystack.components.nope.Nope"))
    with pytest.raises(PipelineLoadError) as info:
        load_pipelines(profile)
    assert info.value.component == "joiner"
    assert "query.yml" in str(info.value)


def test_bad_init_parameter_names_component(profile):
    edit_yaml(profile / "query.yml", lambda d: d["components"]["gate"]["init_parameters"].update(min_score=7))
    with pytest.raises(PipelineLoadError, match=r"query.yml, component 'gate': ValueError: min_score must be"):
        load_pipelines(profile)


def test_module_outside_allowlist_is_refused(profile):
    edit_yaml(profile / "query.yml", lambda d: d["components"]["joiner"].update(type="subprocess.Popen"))
    with pytest.raises(PipelineLoadError, match="joiner"):
        load_pipelines(profile)


def test_python_tags_are_refused(tmp_path):
    path = tmp_path / "query.yml"
    path.write_text("components:\n  x: !!python/tuple [1, 2]\n")
    with pytest.raises(PipelineLoadError, match="plain YAML"):
        read_yaml(path)


def test_missing_file_and_empty_components(tmp_path):
    with pytest.raises(PipelineLoadError, match="file not found"):
        load_pipelines(tmp_path)
    (tmp_path / "indexing.yml").write_text("components: {}\n")
    with pytest.raises(PipelineLoadError, match="non-empty 'components'"):
        load_pipelines(tmp_path)


def test_bad_connection_is_reported(profile):
    edit_yaml(
        profile / "query.yml", lambda d: d["connections"].append({"sender": "gate.nothing", "receiver": "llm.messages"})
    )
    with pytest.raises(PipelineLoadError, match="nothing"):
        load_pipelines(profile)


def test_declared_input_must_exist(profile):
    edit_yaml(profile / "query.yml", lambda d: d["inputs"].update(question="text_embedder.no_such_socket"))
    with pytest.raises(PipelineLoadError, match="no_such_socket"):
        load_pipelines(profile)


def test_different_store_configs_are_refused(profile):
    def change(data):
        data["components"]["writer"]["init_parameters"]["document_store"]["init_parameters"]["table_name"] = "other"

    edit_yaml(profile / "indexing.yml", change)
    with pytest.raises(PipelineLoadError, match="different document store"):
        load_pipelines(profile)


def test_run_data_maps_declared_inputs(profile):
    spec = load_pipeline(profile / "query.yml")
    data = spec.run_data(question="q", top_k=3, filters=None)
    assert data["joiner"] == {"top_k": 3}
    assert data["condenser"] == {"question": "q"}
    assert "embedding_retriever" not in data
    with pytest.raises(KeyError):
        spec.run_data(nope=1)


def test_embedder_and_store_dimension_mismatch_is_named_at_warm_up(profile):
    def change(data):
        for spec in data["components"].values():
            store = spec.get("init_parameters", {}).get("document_store")
            if store:
                store["init_parameters"]["embedding_dim"] = 768

    edit_yaml(profile / "indexing.yml", change)
    edit_yaml(profile / "query.yml", change)
    pipelines = load_pipelines(profile)
    pipelines.query.pipeline.get_component("text_embedder").warm_up()
    with pytest.raises(PipelineLoadError, match=r"384-dimensional vectors but the document store declares 768"):
        pipelines.check_embedding_dimension()
    pipelines.document_store.embedding_dim = 384
    pipelines.check_embedding_dimension()  # matching sizes pass


def test_a_profile_without_indexing_yml_uses_the_default_one(profile, monkeypatch, caplog):
    """pipelines/profiles/openai/ ships query.yml only: its indexing pipeline is pipelines/indexing.yml."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-dummy")
    openai_profile = profile / "profiles" / "openai"
    shutil.copytree(PIPELINES / "profiles" / "openai", openai_profile)  # the shipped profile, beside the copy
    assert not (openai_profile / "indexing.yml").exists()

    with caplog.at_level("INFO"):
        pipelines = load_pipelines(openai_profile)

    assert pipelines.indexing.path.resolve() == (profile / "indexing.yml").resolve()
    assert pipelines.query.path == openai_profile / "query.yml"
    assert type(pipelines.query.pipeline.get_component("llm")).__name__ == "OpenAIChatGenerator"
    assert pipelines.indexing.pipeline.get_component("writer").document_store is pipelines.document_store
    assert "has no indexing.yml: using the default's" in caplog.text


def test_a_profile_without_query_yml_uses_the_default_one(profile):
    mine = profile / "profiles" / "mine"
    mine.mkdir(parents=True)
    shutil.copyfile(profile / "indexing.yml", mine / "indexing.yml")
    edit_yaml(mine / "indexing.yml", lambda d: d["components"]["splitter"]["init_parameters"].update(split_length=400))

    pipelines = load_pipelines(mine)

    assert pipelines.indexing.path == mine / "indexing.yml"
    assert pipelines.indexing.pipeline.get_component("splitter").split_length == 400
    assert pipelines.query.path.resolve() == (profile / "query.yml").resolve()


def test_only_a_profiles_folder_falls_back_unless_a_default_dir_is_given(profile, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copyfile(profile / "query.yml", elsewhere / "query.yml")
    with pytest.raises(PipelineLoadError, match=r"indexing.yml: file not found"):
        load_pipelines(elsewhere)

    pipelines = load_pipelines(elsewhere, default_dir=profile)

    assert pipelines.indexing.path == profile / "indexing.yml"
    assert pipelines.query.path == elsewhere / "query.yml"


def test_a_profile_missing_a_file_the_default_lacks_too_names_both(profile):
    mine = profile / "profiles" / "mine"
    mine.mkdir(parents=True)
    shutil.copyfile(profile / "query.yml", mine / "query.yml")
    (profile / "indexing.yml").unlink()
    with pytest.raises(PipelineLoadError, match=r"file not found \(nor in the default directory"):
        load_pipelines(mine)


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda d: d["components"]["embedder"]["init_parameters"].update(max_length=128), "max_tokens: 128"),
        (lambda d: d["components"]["chunk_guard"]["init_parameters"].pop("max_tokens"), "max_tokens: 256"),
        (
            lambda d: d["components"]["chunk_guard"]["init_parameters"].update(meta_fields_to_embed=[]),
            "meta_fields_to_embed: ['context_header']",
        ),
    ],
)
def test_chunks_longer_than_the_embedder_keeps_are_refused_at_load(profile, edit, named):
    """Issue 14, item 1: every chunk's full text must reach the dense index; a guard that lets longer chunks through
    (or counts other tokens than the embedder sees) fails the load with the setting to change."""
    edit_yaml(profile / "indexing.yml", edit)
    with pytest.raises(PipelineLoadError) as info:
        load_pipelines(profile)
    assert "chunk_guard" in str(info.value) and named in str(info.value)


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (
            lambda d: d["components"]["embedder"]["init_parameters"].update(model="another-model"),
            "embedder_model: 'another-model'",
        ),
        (
            lambda d: d["components"]["reuser"]["init_parameters"].update(meta_fields_to_embed=[]),
            "meta_fields_to_embed: ['context_header']",
        ),
    ],
)
def test_a_reuser_that_would_keep_embeddings_the_embedder_would_not_make_is_refused_at_load(profile, edit, named):
    """Issue 17: a change of the embedder's model or of the text it embeds (a YAML edit) must not reuse stored
    embeddings: the reuser names the same model and fields, or the load fails with the setting to change."""
    edit_yaml(profile / "indexing.yml", edit)
    with pytest.raises(PipelineLoadError) as info:
        load_pipelines(profile)
    assert "reuser" in str(info.value) and named in str(info.value)


@pytest.mark.parametrize(
    ("edit", "component", "named"),
    [
        (
            lambda d: d["components"]["text_embedder"]["init_parameters"].update(model="all-MiniLM-L6-v2-int8"),
            "text_embedder",
            "model: 'all-MiniLM-L6-v2-dynamic-int8'",
        ),
        (
            lambda d: d["components"]["selector"]["init_parameters"].update(model="all-MiniLM-L6-v2-int8"),
            "selector",
            "model: 'all-MiniLM-L6-v2-dynamic-int8'",
        ),
    ],
)
def test_a_query_side_model_other_than_the_indexing_embedders_is_refused_at_load(profile, edit, component, named):
    """A YAML edit of one embedder's model must not leave queries (or the selector's sentences) embedded by another
    model than the chunks: the load fails naming the component and the setting."""
    edit_yaml(profile / "query.yml", edit)
    with pytest.raises(PipelineLoadError) as info:
        load_pipelines(profile)
    assert component in str(info.value) and named in str(info.value)


def test_an_embedder_without_a_chunk_guard_is_refused_at_load(profile):
    def drop_guard(d):
        del d["components"]["chunk_guard"]
        d["connections"] = [c for c in d["connections"] if "chunk_guard" not in c["sender"] + c["receiver"]]
        d["connections"].append({"sender": "metadata.documents", "receiver": "chunk_metadata.documents"})

    edit_yaml(profile / "indexing.yml", drop_guard)
    with pytest.raises(PipelineLoadError, match="no ChunkSizeGuard"):
        load_pipelines(profile)


def test_a_smaller_guard_than_the_embedder_loads(profile):
    edit_yaml(
        profile / "indexing.yml", lambda d: d["components"]["chunk_guard"]["init_parameters"].update(max_tokens=200)
    )
    assert load_pipelines(profile).indexing.pipeline.get_component("chunk_guard").max_tokens == 200


# --- concurrent runs (`concurrency_limit`) and the query embedding passed by reference ---


def _spec(pipeline, inputs, outputs, concurrency):
    from app.pipeline_loader import PipelineSpec

    return PipelineSpec(
        name="query",
        path=PIPELINES / "query.yml",
        pipeline=pipeline,
        inputs=inputs,
        outputs=outputs,
        concurrency_limit=concurrency,
    )


def _retrievers_meeting_at(barrier):
    """Two fake retrievers that each wait at `barrier`: they only both return if they run at the same time."""
    from haystack import Document, Pipeline, component

    @component
    class MeetingRetriever:
        def __init__(self, label: str) -> None:
            self.label = label

        @component.output_types(documents=list[Document])
        def run(self, query: str) -> dict:
            barrier.wait()
            return {"documents": [Document(content=f"{self.label}: {query}")]}

    @component
    class Join:
        @component.output_types(documents=list[Document])
        def run(self, keyword: list[Document], dense: list[Document]) -> dict:
            return {"documents": keyword + dense}

    pipeline = Pipeline()
    pipeline.add_component("keyword_retriever", MeetingRetriever("keyword"))
    pipeline.add_component("embedding_retriever", MeetingRetriever("dense"))
    pipeline.add_component("joiner", Join())
    pipeline.connect("keyword_retriever.documents", "joiner.keyword")
    pipeline.connect("embedding_retriever.documents", "joiner.dense")
    inputs = {"question": ["keyword_retriever.query", "embedding_retriever.query"]}
    return pipeline, inputs, {"passages": "joiner.documents"}


def test_concurrency_limit_runs_the_two_retrievers_at_the_same_time():
    import threading

    from app import timing

    barrier = threading.Barrier(2, timeout=10)  # no sleeps: each retriever returns only once both have started
    spec = _spec(*_retrievers_meeting_at(barrier), concurrency=2)

    with timing.timed_run() as components_ms:  # the caller's context reaches the components' threads
        result = spec.run(spec.run_data(question="q"))

    passages = spec.read_outputs(result)["passages"]
    assert [d.content for d in passages] == ["keyword: q", "dense: q"]
    assert set(components_ms) == {"keyword_retriever", "embedding_retriever", "joiner"}
    assert not barrier.broken


def test_without_concurrency_limit_components_run_one_at_a_time():
    import threading

    from haystack.core.errors import PipelineRuntimeError

    barrier = threading.Barrier(2, timeout=0.5)  # the first retriever waits alone, then the barrier breaks
    spec = _spec(*_retrievers_meeting_at(barrier), concurrency=1)

    with pytest.raises(PipelineRuntimeError):
        spec.run(spec.run_data(question="q"))


def test_concurrent_run_raises_the_failing_components_error():
    from haystack import Document, Pipeline, component
    from haystack.core.errors import PipelineRuntimeError

    @component
    class Broken:
        @component.output_types(documents=list[Document])
        def run(self, query: str) -> dict:
            raise OSError("store unreachable")

    pipeline = Pipeline()
    pipeline.add_component("keyword_retriever", Broken())
    spec = _spec(pipeline, {"question": ["keyword_retriever.query"]}, {}, concurrency=2)

    with pytest.raises(PipelineRuntimeError, match="store unreachable") as raised:
        spec.run(spec.run_data(question="q"))
    assert isinstance(raised.value.__cause__, OSError)


def test_run_inside_an_event_loop_falls_back_to_one_at_a_time():
    import asyncio
    import threading

    barrier = threading.Barrier(1)
    spec = _spec(*_retrievers_meeting_at(barrier), concurrency=2)

    async def call():
        return spec.run(spec.run_data(question="q"))

    assert len(spec.read_outputs(asyncio.run(call()))["passages"]) == 2


@pytest.mark.parametrize("concurrency", [1, 2])
@pytest.mark.parametrize("immutable", [True, False])
def test_query_embedding_reaches_the_retriever_uncopied_only_when_immutable(concurrency, immutable):
    from haystack import Document, Pipeline, component

    from components.embedders.query_embedding import QueryEmbedding

    @component
    class Embedder:
        produced = None

        @component.output_types(embedding=list[float])
        def run(self, text: str) -> dict:
            values = [float(i) / 384 for i in range(384)]
            Embedder.produced = QueryEmbedding(values) if immutable else values
            return {"embedding": Embedder.produced}

    @component
    class Retriever:
        received = None

        @component.output_types(documents=list[Document])
        def run(self, query_embedding: list[float]) -> dict:
            Retriever.received = query_embedding
            return {"documents": [Document(content="x", score=float(query_embedding[1]))]}

    pipeline = Pipeline()
    pipeline.add_component("text_embedder", Embedder())
    pipeline.add_component("embedding_retriever", Retriever())
    pipeline.connect("text_embedder.embedding", "embedding_retriever.query_embedding")
    spec = _spec(
        pipeline, {"question": ["text_embedder.text"]}, {"passages": "embedding_retriever.documents"}, concurrency
    )

    spec.run(spec.run_data(question="q"))

    assert Retriever.received == Embedder.produced
    assert (Retriever.received is Embedder.produced) is immutable


@pytest.mark.parametrize("value", [0, -1, "2", 1.5, True])
def test_concurrency_limit_must_be_a_positive_integer(profile, value):
    edit_yaml(profile / "query.yml", lambda data: data.update(concurrency_limit=value))
    with pytest.raises(PipelineLoadError, match="concurrency_limit"):
        load_pipeline(profile / "query.yml")


@pytest.mark.parametrize("source", ["default", "pgvector"])
def test_shipped_query_concurrency_and_immutable_embedding_round_trip(tmp_path, monkeypatch, source):
    from haystack import Pipeline

    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PG_CONN_STR", "postgresql://nobody@127.0.0.1:1/none")  # loading never connects
    directory = copy_profile(tmp_path / "pipelines", source)

    spec = load_pipeline(pipeline_file(directory, "query"))
    reloaded = Pipeline.loads(spec.pipeline.dumps(), allowed_modules=["components"])

    assert spec.concurrency_limit == {"default": 2, "pgvector": 1}[source]  # measured: docs/benchmarks.md
    assert spec.pipeline.get_component("text_embedder").immutable_embedding is True
    assert reloaded.get_component("text_embedder").immutable_embedding is True
