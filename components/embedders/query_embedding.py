"""An immutable query embedding that a Haystack pipeline passes between components by reference."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, overload

import numpy as np


class QueryEmbedding(Sequence[float]):
    """
    A read-only vector of floats: a `Sequence[float]` backed by one frozen float32 array.

    A pipeline run deep-copies every component input (`haystack.core.pipeline.utils._deepcopy_with_exceptions`);
    a plain `list[float]` is rebuilt element by element there, about 5 ms for 384 floats on a 2-core machine, once
    per receiving component. Anything that is not a list, tuple, set or dict goes through `copy.deepcopy`, which
    asks the object itself (`__deepcopy__`): this type cannot be modified, so its copy is the object itself, and the
    retriever gets the very vector the embedder produced.

    It reads like a list of floats (`len`, indexing, iteration, `==` with a list), converts to NumPy without a copy
    (`np.asarray`), and `tolist()` / `to_list()` give a plain list for clients that need one.

    ```python
    embedding = QueryEmbedding([0.1, 0.2, 0.3])
    copy.deepcopy(embedding) is embedding  # True
    ```
    """

    __slots__ = ("_vector",)

    def __init__(self, values: Iterable[float] | np.ndarray) -> None:
        """
        :param values: The vector's values; copied once into a read-only float32 array.
        :raises ValueError: if `values` is not a one-dimensional sequence of numbers.
        """
        vector = np.array(values, dtype=np.float32)
        if vector.ndim != 1:
            raise ValueError(f"a query embedding must be one-dimensional, got shape {vector.shape}")
        vector.setflags(write=False)
        self._vector = vector

    def __len__(self) -> int:
        return int(self._vector.shape[0])

    @overload
    def __getitem__(self, index: int) -> float: ...

    @overload
    def __getitem__(self, index: slice) -> list[float]: ...

    def __getitem__(self, index: int | slice) -> float | list[float]:
        if isinstance(index, slice):
            return self._vector[index].tolist()
        return float(self._vector[index])

    def __iter__(self) -> Iterator[float]:
        return iter(self._vector.tolist())

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if copy:
            return self._vector.astype(dtype or self._vector.dtype, copy=True)
        return self._vector if dtype is None else self._vector.astype(dtype, copy=False)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, QueryEmbedding):
            return bool(np.array_equal(self._vector, other._vector))
        if isinstance(other, list | tuple):
            return self.tolist() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to a list, which is unhashable

    def __deepcopy__(self, memo: dict[int, Any]) -> QueryEmbedding:
        return self  # immutable: sharing it is as safe as copying it

    def __copy__(self) -> QueryEmbedding:
        return self

    def __reduce__(self) -> tuple[type[QueryEmbedding], tuple[list[float]]]:
        return QueryEmbedding, (self.tolist(),)

    def __repr__(self) -> str:
        return f"QueryEmbedding(dim={len(self)})"

    def tolist(self) -> list[float]:
        """The values as a new plain list of floats."""
        return self._vector.tolist()

    to_list = tolist  # the spelling some vector-database clients look for (pandas-style)
