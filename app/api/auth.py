"""Who is calling: API keys from `Authorization: Bearer <key>` or `X-API-Key`, roles, collection scopes, rate limits.

`app.api.middleware.ApiKeyMiddleware` checks the key (and counts the request against its rate limit) from the headers
before the app runs, so no body is read for a caller without a valid key; it leaves the key in the request state
(`AUTHENTICATED_KEY`) and `authenticate` below takes it from there. Routes declare what they need with the Annotated
dependencies at the bottom (`Reader`, `Writer`, `Admin`) and check the collection they touch with
`key.require(role, collection)`. The checked key carries its tenant boundary (`ApiKey.boundary`, read when the request
is authenticated), so that same check also answers a collection of another tenant as one that does not exist (404).
`RAG_DEV_MODE=true` turns all of it off.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

from app.api.deps import RagState, State
from app.errors import AuthenticationError
from app.services.api_keys import DEV_KEY, ApiKey, KeyStore, Role
from app.services.rate_limit import RateLimiter
from app.services.visibility import read_filter

AUTHENTICATED_KEY = "api_key"  # the request-state entry where the middleware leaves the checked key
KEY_REQUIRED = "an API key is required: send `Authorization: Bearer <key>` or `X-API-Key: <key>`"

Bound = Callable[[ApiKey], ApiKey]  # a key with its tenant boundary (`CollectionService.bound`)

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer rag_...`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key, as an alternative header")


def _check(keys: KeyStore, limiter: RateLimiter, presented: str, bound: Bound | None) -> ApiKey:
    key = keys.authenticate(presented)
    if key is None:
        raise AuthenticationError("invalid or revoked API key")
    limiter.hit(key.id)
    return bound(key) if bound is not None else key


async def verify(
    keys: KeyStore,
    limiter: RateLimiter,
    presented: str | None,
    executor: Executor | None = None,
    bound: Bound | None = None,
) -> ApiKey:
    """The active key `presented` (AuthenticationError without one, RateLimitedError over its limit); the SQLite
    lookup runs off the event loop, on `executor` (the app's auth threads: `Services.auth_executor`) when given.
    `bound` (`CollectionService.bound`) gives the key its tenant boundary, read once for the request: every
    `key.require(role, collection)` and `key.allows(collection)` of the request checks it."""
    if not presented:
        raise AuthenticationError(KEY_REQUIRED)
    check = contextvars.copy_context().run  # the request's log context goes along, as with asyncio.to_thread
    return await asyncio.get_running_loop().run_in_executor(executor, check, _check, keys, limiter, presented, bound)


def presented_key(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The key in raw ASGI headers: `X-API-Key` first, else `Authorization: Bearer` (as the dependencies read them)."""
    header = bearer = None
    for name, value in headers:
        if name == b"x-api-key" and header is None:
            header = value.decode("latin-1")
        elif name == b"authorization" and bearer is None:
            scheme, credentials = get_authorization_scheme_param(value.decode("latin-1"))
            bearer = credentials if scheme.lower() == "bearer" and credentials else ""
    return header or bearer or None


async def authenticate(
    state: State,
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header: Annotated[str | None, Depends(_header)],
) -> ApiKey:
    """The caller's key (401 without a valid one, 429 over its rate limit); the dev key in dev mode. The key the
    middleware checked for this request is used as is (one lookup and one rate-limit hit per request)."""
    if state.settings.dev_mode:
        return DEV_KEY
    checked = request.scope.get("state", {}).get(AUTHENTICATED_KEY)
    if isinstance(checked, ApiKey):
        return checked
    presented = header or (bearer.credentials if bearer else None)
    return await verify(state.keys, state.rate_limiter, presented, state.auth_executor, state.collections.bound)


async def read_scope(state: RagState, key: ApiKey) -> dict[str, Any] | None:
    """The caller's read filter (`app.services.visibility.read_filter`: the documents it may read), for every read
    path to AND into its store query; one state-database query, off the event loop. It names a missing `acl`/`tenant`
    only when the store's filters can (`Services.missing_value_filters`: not on Pinecone)."""
    return await asyncio.to_thread(read_filter, key, state.access, missing_values=state.missing_value_filters)


async def readable_acls(state: RagState, key: ApiKey) -> list[str] | None:
    """The access list ids the caller reads (None: every one), for state tables that record a document's acl id."""
    return await asyncio.to_thread(state.access.readable_acls, key.principals)


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
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        header: Annotated[str | None, Depends(_header)],
    ) -> ApiKey | None:
        if endpoint in state.settings.public_endpoints:
            return None
        return await authenticate(state, request, bearer, header)

    return dependency


Reader = Annotated[ApiKey, Depends(require_role(Role.READER))]
Writer = Annotated[ApiKey, Depends(require_role(Role.WRITER))]
Admin = Annotated[ApiKey, Depends(require_role(Role.ADMIN))]
