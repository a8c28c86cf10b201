"""Per-API-key rate limits (moving window, the `limits` library): in memory per process, or shared through Redis."""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse_many
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from app.errors import RateLimitedError
from app.extras import extra_required


class RateLimiter:
    """Moving-window limits per API key (in memory per process, or shared through Redis)."""

    def __init__(self, limit: str, storage_uri: str = "memory://") -> None:
        self.items: list[RateLimitItem] = [] if limit.strip().lower() == "off" else parse_many(limit)
        if self.items and "redis" in storage_uri.partition("://")[0]:
            with extra_required("redis", "Keeping rate-limit counters in Redis (RAG_RATE_LIMIT_STORAGE)"):
                import redis  # noqa: F401  # what limits' Redis storage needs
        self.limiter = MovingWindowRateLimiter(storage_from_string(storage_uri)) if self.items else None

    def hit(self, key_id: str) -> None:
        """Count one request; RateLimitedError (429, with Retry-After) when a window is full."""
        if self.limiter is None:
            return
        for item in self.items:
            if not self.limiter.hit(item, key_id):
                reset, _ = self.limiter.get_window_stats(item, key_id)
                retry_after = max(1, math.ceil(reset - time.time()))
                raise RateLimitedError(
                    f"rate limit of {item} per API key exceeded; retry in {retry_after} s", retry_after=retry_after
                )
