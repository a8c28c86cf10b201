"""The one way the document stores offer their `*_async` methods: the sync method, run in a worker thread.

Both stores are thread-safe (LanceDB under its lock, pgvector with one pooled connection per call), so an async
caller gets the same behaviour, limits and errors as a sync one:

```python
class MyStore:
    def count_documents(self) -> int: ...

    count_documents_async = in_thread(count_documents)
```
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


def in_thread(method: Callable[Concatenate[Any, P], R]) -> Callable[Concatenate[Any, P], Coroutine[Any, Any, R]]:
    """
    Return the async variant of a sync store method, to be assigned as `<name>_async` in the class body.

    The sync method is looked up by name on each call, so a subclass override (or a patched instance) is what runs.
    The variant has the sync method's signature (`__wrapped__`), which callers such as Haystack's store test suite
    inspect.
    """
    name = method.__name__

    @functools.wraps(method)  # `inspect.signature` shows the sync method's parameters
    async def variant(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> R:
        result: R = await asyncio.to_thread(getattr(self, name), *args, **kwargs)
        return result

    variant.__name__ = f"{name}_async"
    variant.__qualname__ = f"{method.__qualname__}_async"
    variant.__doc__ = f"Async `{name}`: runs the sync method in a worker thread (`asyncio.to_thread`)."
    return variant
