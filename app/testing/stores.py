"""`CountingStore`: a document store proxy that counts the calls made on it (how many queries a service makes)."""

from __future__ import annotations

from collections import Counter
from typing import Any


class CountingStore:
    """Delegates to a real store and counts every method called on it, by name; `hide` names methods it lacks
    (`hide=("grouped_counts",)` is a store without grouped counts)."""

    def __init__(self, store: Any, *, hide: tuple[str, ...] = ()) -> None:
        self._store = store
        self._hidden = frozenset(hide)
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        if name in self._hidden:
            raise AttributeError(name)
        attr = getattr(self._store, name)
        if not callable(attr):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return attr(*args, **kwargs)

        return counted
