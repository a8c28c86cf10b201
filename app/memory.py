"""Native memory hygiene for long-running processes: glibc's arena limit and returning freed memory to the system.

glibc's allocator gives every thread that allocates its own arena (up to 8 per core) and keeps freed memory in
them; a server whose pool threads take turns at parsing, embedding and writing ends up holding the peak of each
arena. `limit_malloc_arenas` caps the number of arenas (the `MALLOC_ARENA_MAX` setting, applied from inside the
process so it needs no wrapper script), and `release_free_memory` hands memory that is free but kept back to the
system (`malloc_trim(0)`), which the ingest paths call after each file. Measured by `bench/memory.py`
(docs/benchmarks.md). Both are no-ops where glibc is not the C library (musl, macOS).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import threading
from typing import Any

from haystack import logging

logger = logging.getLogger(__name__)

_M_ARENA_MAX = -8  # mallopt() parameter from glibc's malloc.h
_TRIM_LOCK = threading.Lock()


@functools.cache
def _glibc() -> Any | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # noqa: B018  # only glibc has it
    except (OSError, AttributeError):
        return None
    return libc


def limit_malloc_arenas(arenas: int) -> bool:
    """Cap glibc's malloc arenas for arenas created from now on (0 keeps glibc's default); True when applied."""
    libc = _glibc()
    if libc is None or arenas <= 0:
        return False
    applied = bool(libc.mallopt(_M_ARENA_MAX, arenas))
    logger.debug("malloc arenas capped at {arenas}: {applied}", arenas=arenas, applied=applied)
    return applied


def release_free_memory() -> bool:
    """Return free memory the allocator keeps back to the system (a few ms); True when some was released."""
    libc = _glibc()
    if libc is None:
        return False
    if not _TRIM_LOCK.acquire(blocking=False):
        return False  # another thread is trimming right now: once is enough
    try:
        return bool(libc.malloc_trim(0))
    finally:
        _TRIM_LOCK.release()
