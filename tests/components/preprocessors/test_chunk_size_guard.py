"""ChunkSizeGuard: no chunk longer than the splitter's size leaves the indexing pipeline's join."""

from __future__ import annotations

import pytest
from haystack import Document, Pipeline
from haystack.core.serialization import component_from_dict, component_to_dict

from components.preprocessors.chunk_size_guard import ChunkSizeGuard, split_text


@pytest.mark.parametrize("max_chars", [0, -1, True, "1000"])
def test_init_rejects_invalid_max_chars(max_chars):
    with pytest.raises(ValueError):
        ChunkSizeGuard(max_chars=max_chars)


def test_init_round_trips():
    data = component_to_dict(ChunkSizeGuard(max_chars=300), "guard")
    assert data["init_parameters"] == {
        "max_chars": 300,
        "max_tokens": None,
        "tokenizer": "all-MiniLM-L6-v2-int8",
        "meta_fields_to_embed": [],
        "embedding_separator": "\n",
    }
    assert component_to_dict(component_from_dict(ChunkSizeGuard, data, "guard"), "guard") == data


@pytest.mark.parametrize("text", ["x" * 2500, "word " * 700, "line\n" * 600, "a b", ""])
def test_split_text_loses_nothing_and_respects_the_limit(text):
    pieces = split_text(text, 1000)
    assert "".join(pieces) == text
    assert all(len(p) <= 1000 for p in pieces)
    if len(text) > 1000 and " " in text:
        assert all(p.endswith((" ", "\n")) for p in pieces[:-1])  # cut at a word boundary


def test_a_120_kb_csv_row_chunk_is_split_and_short_chunks_pass_unchanged():
    """Red-team finding 3: the CSV converter emits a 120 KB row as one chunk; it leaves the guard in pieces."""
    short = Document(content="Columns: a\na: 1", meta={"row_start": 1})
    row = Document(content="Columns: id, notes\nid: 2; notes: " + "lorem ipsum " * 10_000, meta={"row_start": 2})
    out = ChunkSizeGuard(max_chars=1000).run(documents=[short, row])["documents"]
    assert out[0] is short
    assert len(out) > 100 and all(len(d.content) <= 1000 for d in out)
    assert "".join(d.content for d in out[1:]) == row.content
    assert all(d.meta["row_start"] == 2 for d in out[1:])
    assert [d.meta["split_id"] for d in out[1:]] == list(range(len(out) - 1))
    assert len({d.id for d in out}) == len(out)


def test_in_yaml_pipeline_after_the_csv_converter(tmp_path):
    yaml_text = """
components:
  csv:
    type: components.converters.csv_rows_to_document.CsvRowsToDocument
    init_parameters: {max_chars: 500}
  guard:
    type: components.preprocessors.chunk_size_guard.ChunkSizeGuard
    init_parameters: {max_chars: 500}
connections:
  - {sender: csv.documents, receiver: guard.documents}
"""
    path = tmp_path / "wide.csv"
    path.write_text("id,notes\n1,short\n2," + "x" * 120_000 + "\n3,short too\n", encoding="utf-8")
    pipe = Pipeline.loads(yaml_text, allowed_modules=["components"])
    documents = pipe.run({"csv": {"sources": [path]}})["guard"]["documents"]
    assert len(documents) > 200
    assert all(len(d.content) <= 500 for d in documents)
    assert sum(len(d.content) for d in documents) >= 120_000


@pytest.mark.parametrize(
    "kwargs", [{"max_tokens": 8}, {"max_tokens": "256"}, {"tokenizer": ""}, {"meta_fields_to_embed": [1]}]
)
def test_init_rejects_invalid_token_arguments(kwargs):
    with pytest.raises(ValueError):
        ChunkSizeGuard(**kwargs)


def _embedded_tokens(guard: ChunkSizeGuard, doc: Document) -> int:
    title = doc.meta.get("title")
    return len(guard._tokenizer.encode((f"{title}\n" if title else "") + doc.content).ids)


def test_with_max_tokens_every_chunk_fits_the_embedder_whole():
    """Issue 14, item 1: a 1,000-character chunk of code or identifiers is ~300 tokens; an embedder that keeps 256
    never sees its end. The guard splits it into balanced pieces that fit, title included, losing nothing."""
    code = "x <- .Call(C_foo_bar, as.integer(n), PACKAGE = 'pkgname'); " * 16  # ~1,000 chars, far over 256 tokens
    prose = "The quick brown fox jumps over the lazy dog. " * 5
    docs = [
        Document(content=code[:1000], meta={"title": "Writing R Extensions"}),
        Document(content=prose, meta={"title": "Writing R Extensions"}),
    ]
    guard = ChunkSizeGuard(max_chars=1000, max_tokens=256, meta_fields_to_embed=["title"])
    guard.warm_up()
    assert _embedded_tokens(guard, docs[0]) > 256
    out = guard.run(documents=docs)["documents"]
    assert out[-1] is docs[1]  # fits: passes unchanged
    pieces = out[:-1]
    assert len(pieces) >= 2
    assert "".join(p.content for p in pieces) == docs[0].content
    assert all(_embedded_tokens(guard, p) <= 256 for p in pieces)
    sizes = [_embedded_tokens(guard, p) for p in pieces]
    assert min(sizes) > max(sizes) / 2  # balanced, no 10-token tail
    assert all(p.meta["title"] == "Writing R Extensions" for p in pieces)


def test_without_max_tokens_a_long_token_chunk_passes():
    code = "x <- .Call(C_foo_bar, as.integer(n)); " * 26
    doc = Document(content=code[:1000])
    assert ChunkSizeGuard(max_chars=1000).run(documents=[doc])["documents"] == [doc]
