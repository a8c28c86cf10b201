"""QueryEmbedding: a read-only float sequence that Haystack's pipeline copy passes on as the same object."""

import copy
import pickle

import numpy as np
import pytest
from haystack.core.pipeline.utils import _deepcopy_with_exceptions

from components.embedders.query_embedding import QueryEmbedding


def test_haystack_input_copy_returns_the_same_object():
    embedding = QueryEmbedding(np.linspace(-1, 1, 384))
    plain = embedding.tolist()

    copied = _deepcopy_with_exceptions({"query_embedding": embedding, "plain": plain})

    assert copied["query_embedding"] is embedding
    assert copied["plain"] is not plain  # what a list gets: rebuilt element by element
    assert copy.deepcopy(embedding) is embedding
    assert copy.copy(embedding) is embedding


def test_reads_like_a_list_of_floats():
    embedding = QueryEmbedding([0.5, -0.25, 1.0])

    assert len(embedding) == 3
    assert embedding[1] == -0.25 and isinstance(embedding[1], float)
    assert embedding[-1] == 1.0
    assert embedding[:2] == [0.5, -0.25]
    assert list(embedding) == [0.5, -0.25, 1.0]
    assert embedding == [0.5, -0.25, 1.0]
    assert embedding == QueryEmbedding((0.5, -0.25, 1.0))
    assert embedding != [0.5, -0.25]
    assert embedding.tolist() == embedding.to_list() == [0.5, -0.25, 1.0]
    assert all(isinstance(value, float) for value in embedding)
    assert bool(embedding) and not bool(QueryEmbedding([]))
    assert repr(embedding) == "QueryEmbedding(dim=3)"


def test_cannot_be_modified():
    embedding = QueryEmbedding([1.0, 2.0])
    with pytest.raises(TypeError):
        embedding[0] = 3.0  # type: ignore[index]
    with pytest.raises(ValueError, match="read-only"):
        np.asarray(embedding)[0] = 3.0
    source = np.array([1.0, 2.0], dtype=np.float32)
    embedding = QueryEmbedding(source)
    source[0] = 9.0  # the embedding holds its own copy
    assert embedding[0] == 1.0


def test_numpy_view_without_copy():
    embedding = QueryEmbedding([1.0, 2.0, 3.0])

    view = np.asarray(embedding, dtype=np.float32)

    assert view.dtype == np.float32 and view.shape == (3,)
    assert np.shares_memory(view, np.asarray(embedding))
    assert np.asarray(embedding, dtype=np.float64).dtype == np.float64
    assert not np.shares_memory(np.array(embedding, copy=True), view)


def test_pickles_and_rejects_non_vectors():
    embedding = QueryEmbedding([0.1, 0.2])
    assert pickle.loads(pickle.dumps(embedding)) == embedding
    with pytest.raises(ValueError, match="one-dimensional"):
        QueryEmbedding([[1.0, 2.0]])
