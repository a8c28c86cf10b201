"""Who is calling: API keys from `Authorization: Bearer <key>` or `X-API-Key`, roles, collection scopes, rate limits.

Routes declare what they need with the Annotated dependencies at the bottom (`Reader`, `Writer`, `Admin`) and check
the collection they touch with `key.require(role, collection)`. `RAG_DEV_MODE=true` turns all of it off.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from app.api.deps import State
from app.errors import AuthenticationError
from app.services.api_keys import DEV_KEY, ApiKey, KeyStore, Role
from app.services.rate_limit import RateLimiter

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer rag_...`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key, as an alternative header")


def _check(keys: KeyStore, limiter: RateLimiter, presented: str) -> ApiKey:
    key = keys.authenticate(presented)
    if key is None:
        raise AuthenticationError("invalid or revoked API key")
    limiter.hit(key.id)
    return key


async def authenticate(
    state: State,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header: Annotated[str | None, Depends(_header)],
) -> ApiKey:
    """The caller's key (401 without a valid one, 429 over its rate limit); the dev key in dev mode."""
    if state.settings.dev_mode:
        return DEV_KEY
    presented = header or (bearer.credentials if bearer else None)
    if not presented:
        raise AuthenticationError("an API key is required: send `Authorization: Bearer <key>` or `X-API-Key: <key>`")
    return await asyncio.to_thread(_check, state.keys, state.rate_limiter, presented)


def require_role(role: Role) -> Callable[[ApiKey], Awaitable[ApiKey]]:
    """A dependency: the caller's key, which must have at least `role` (403 otherwise)."""

    async def dependency(key: Annotated[ApiKey, Depends(authenticate)]) -> ApiKey:
        key.require(role)
        return key

    return dependency


def public_or_key(endpoint: str) -> Callable[..., Awaitable[ApiKey | None]]:
    """A dependency for health/ready/metrics: no key needed when `endpoint` is in RAG_PUBLIC_ENDPOINTS."""

    async def dependency(
        state: State,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        header: Annotated[str | None, Depends(_header)],
    ) -> ApiKey | None:
        if endpoint in state.settings.public_endpoints:
            return None
        return await authenticate(state, bearer, header)

    return dependency


Reader = Annotated[ApiKey, Depends(require_role(Role.READER))]
Writer = Annotated[ApiKey, Depends(require_role(Role.WRITER))]
Admin = Annotated[ApiKey, Depends(require_role(Role.ADMIN))]
