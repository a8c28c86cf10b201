import pytest
from haystack import Document, Pipeline
from haystack.core.serialization import component_from_dict, component_to_dict

from components.preprocessors.chunk_metadata import ChunkMetadata


def test_init_validates_and_round_trips():
    with pytest.raises(ValueError):
        ChunkMetadata(group_by="")
    component = ChunkMetadata(drop_fields=["x"])
    data = component_to_dict(component, "chunks")
    assert component_to_dict(component_from_dict(ChunkMetadata, data, "chunks"), "chunks") == data


def test_numbers_chunks_per_document_and_drops_bookkeeping():
    docs = [
        Document(
            content="a",
            meta={
                "document_id": "d1",
                "page": 1,
                "split_id": 0,
                "_split_overlap": [],
                "page_number": 1,
                "parent_id": "p",
            },
        ),
        Document(content="b", meta={"document_id": "d1", "page": 2, "split_id": 0}),
        Document(content="c", meta={"document_id": "d2"}),
        Document(content="d", meta={"document_id": "d1", "page": 2, "split_id": 1}),
    ]
    out = ChunkMetadata().run(documents=docs)["documents"]
    assert [d.meta["chunk_index"] for d in out] == [0, 1, 0, 2]
    assert out[0].meta == {"document_id": "d1", "page": 1, "chunk_index": 0}
    assert "page" not in out[2].meta
    assert "chunk_index" not in docs[0].meta, "inputs are not modified"


def test_in_yaml_pipeline():
    pipe = Pipeline.loads(
        "components:\n  cm:\n    type: components.preprocessors.chunk_metadata.ChunkMetadata\n    init_parameters: {}\n"
        "connections: []\n",
        allowed_modules=["components"],
    )
    out = pipe.run({"cm": {"documents": [Document(content="x", meta={"document_id": "a"})]}})
    assert out["cm"]["documents"][0].meta["chunk_index"] == 0


def test_meta_given_to_run_is_set_on_every_chunk_after_the_splitter_bookkeeping_is_dropped():
    from haystack import Document

    from components.preprocessors.chunk_metadata import ChunkMetadata

    chunks = [Document(content=f"c{i}", meta={"document_id": "d", "source_id": "splitter-parent"}) for i in range(2)]
    out = ChunkMetadata().run(chunks, meta={"source_id": "manual.pdf", "version": 3})["documents"]
    assert [(d.meta["source_id"], d.meta["version"], d.meta["chunk_index"]) for d in out] == [
        ("manual.pdf", 3, 0),
        ("manual.pdf", 3, 1),
    ]
